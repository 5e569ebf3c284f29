"""``Compose``: a data pipeline, MMEngine 0.10.7's ``mmengine.dataset.Compose``.

A pipeline is a list of transforms, each a callable or a config dict built from TRANSFORMS. A
transform that returns ``None`` (an image that failed to load, an augmentation that found no
valid parameters) stops the pipeline, which then returns ``None``; :class:`BaseDataset` answers
that by fetching another sample.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["Compose"]


class Compose:
    """Apply transforms one after the other.

    Args:
        transforms: The transforms, in order: callables, or config dicts (with ``type``) built
            from the TRANSFORMS registry. ``None`` means no transform.

    Raises:
        TypeError: When ``transforms`` is not a sequence, an item is neither a dict nor a
            callable, or a dict builds something that cannot be called.

    Examples:
        >>> pipeline = Compose([lambda d: {**d, "x": d["x"] * 2}])
        >>> pipeline({"x": 3})
        {'x': 6}
        >>> Compose([lambda d: None, lambda d: 1 / 0])({"x": 3}) is None
        True
    """

    def __init__(self, transforms: Sequence[Mapping[str, Any] | Callable[..., Any]] | None) -> None:
        self.transforms: list[Callable[..., Any]] = []
        if transforms is None:
            transforms = []
        if isinstance(transforms, Mapping | str | bytes) or not isinstance(transforms, Sequence):
            raise TypeError(
                "transforms must be a sequence (list) of transform configs or callables, "
                f"but got {type(transforms).__name__}"
                + (
                    " (wrap a single transform config in a list)"
                    if isinstance(transforms, Mapping)
                    else ""
                )
            )
        for index, transform in enumerate(transforms):
            if isinstance(transform, Mapping):
                from treadle.core.registry import TRANSFORMS

                built = TRANSFORMS.build(transform)
                if not callable(built):
                    raise TypeError(
                        f"transform should be a callable object, but transforms[{index}] "
                        f"({transform.get('type')!r}) built a {type(built).__name__}"
                    )
                self.transforms.append(built)
            elif callable(transform):
                self.transforms.append(transform)
            else:
                raise TypeError(
                    "transform must be a callable object or dict, but transforms"
                    f"[{index}] is a {type(transform).__name__}"
                )

    def __call__(self, data: Any) -> Any:
        """Run ``data`` through every transform.

        Args:
            data: A sample (usually the dict of one data info).

        Returns:
            The transformed sample, or ``None`` as soon as a transform returns ``None``.
        """
        for transform in self.transforms:
            data = transform(data)
            # A transform returns None when it cannot produce this sample; the dataset then
            # fetches another one.
            if data is None:
                return None
        return data

    def __repr__(self) -> str:
        """``Compose(`` then one indented line per transform, MMEngine's format."""
        text = self.__class__.__name__ + "("
        for transform in self.transforms:
            text += f"\n    {transform}"
        return text + "\n)"
