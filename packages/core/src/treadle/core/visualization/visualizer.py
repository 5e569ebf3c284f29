"""The Visualizer: one call fans out to every vis backend (MMEngine's ``Visualizer`` API).

``add_config``, ``add_scalar(s)``, ``add_image`` and ``add_graph`` go to each backend in
``vis_backends`` (built from configs through ``VISBACKENDS``), on rank 0 only.

**A backend that fails does not stop training.** Trackers talk to networks and services with
quotas; when one raises, the error is logged once (naming the backend and the call), the backend
is disabled for the rest of the run, and the other backends and the training go on. A backend
configured with ``required=True`` (``dict(type="WandbVisBackend", required=True)``) re-raises
instead, for runs that must not go unrecorded. Building a backend (an unknown type, a plugin that
is not installed) is a configuration error and always raises.

The drawing API of MMEngine's Visualizer (``draw_bboxes``, ``show``, …, built on matplotlib) is
not part of treadle-core.
"""

from __future__ import annotations

import copy
import inspect
import logging
import os
import warnings
from typing import TYPE_CHECKING, Any

from treadle.core.logging import get_rank, print_log
from treadle.core.utils.manager import ManagerMixin
from treadle.core.visualization.vis_backend import BaseVisBackend

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["Visualizer"]


class Visualizer(ManagerMixin):
    """Record configs, scalars and images to every configured backend.

    Args:
        name: The instance name (``Visualizer.get_instance(name)``).
        image: An RGB ``uint8`` image to start with (see :meth:`set_image`).
        vis_backends: Backend configs (``dict(type="LocalVisBackend", name=..., required=...)``)
            or instances, or one of them. ``name`` defaults to the class name and must be unique;
            ``required=True`` makes that backend's errors stop the run.
        save_dir: Root folder; backends built from configs get ``<save_dir>/vis_data`` as their
            ``save_dir`` unless their config sets one.
        fig_save_cfg: Accepted for MMEngine compatibility (matplotlib figure options; unused).
        fig_show_cfg: Accepted for MMEngine compatibility (unused).

    Raises:
        TypeError: ``vis_backends`` holds something else than configs and backends.
        RuntimeError: Two backends share a name.

    Examples:
        >>> vis = Visualizer(vis_backends=[dict(type="LocalVisBackend")], save_dir="work_dir")
        >>> vis.add_scalars({"loss": 0.5, "acc": 0.9}, step=10)  # doctest: +SKIP
    """

    def __init__(
        self,
        name: str = "visualizer",
        image: Any = None,
        vis_backends: Sequence[dict[str, Any] | BaseVisBackend]
        | dict[str, Any]
        | BaseVisBackend
        | None = None,
        save_dir: str | os.PathLike[str] | None = None,
        fig_save_cfg: dict[str, Any] | None = None,
        fig_show_cfg: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(name)
        self._dataset_meta: dict[str, Any] | None = None
        self._image: Any = None
        self._vis_backends: dict[str, BaseVisBackend] = {}
        self._required: set[str] = set()
        self._failed: dict[str, BaseException] = {}
        self.fig_save_cfg = {"frameon": False} if fig_save_cfg is None else fig_save_cfg
        self.fig_show_cfg = {"frameon": False} if fig_show_cfg is None else fig_show_cfg

        if vis_backends is None:
            backends: list[Any] = []
        elif isinstance(vis_backends, (dict, BaseVisBackend)):
            backends = [vis_backends]
        elif isinstance(vis_backends, (list, tuple)):
            backends = list(vis_backends)
        else:
            raise TypeError(
                "vis_backends must be a list of dicts or vis backends, got "
                f"{type(vis_backends).__name__}"
            )
        vis_dir: str | None = None
        if save_dir is not None:
            from treadle.core.fileio import join_path

            vis_dir = join_path(os.fspath(save_dir), "vis_data")
        for index, entry in enumerate(backends):
            self._add_backend(index, entry, vis_dir)
        if image is not None:
            self.set_image(image)

    def _add_backend(self, index: int, entry: Any, vis_dir: str | None) -> None:
        backend_name: str | None = None
        required = False
        if isinstance(entry, dict):
            cfg = copy.copy(entry)  # MMEngine pops from the caller's dict; we do not
            backend_name = cfg.pop("name", None)
            required = bool(cfg.pop("required", False))
            cfg.setdefault("save_dir", vis_dir)
            from treadle.core.registry import VISBACKENDS

            backend = VISBACKENDS.build(cfg)
        elif isinstance(entry, BaseVisBackend):
            backend = entry
            required = bool(getattr(entry, "required", False))
        else:
            raise TypeError(
                f"vis_backends[{index}] must be a config dict or a BaseVisBackend, got "
                f"{type(entry).__name__}"
            )
        # A backend that needs a save_dir (no default) is left out without one, as MMEngine does.
        save_dir_arg = inspect.signature(type(backend).__init__).parameters.get("save_dir")
        if (
            save_dir_arg is not None
            and save_dir_arg.default is inspect.Parameter.empty
            and getattr(backend, "_save_dir", None) is None
        ):
            warnings.warn(
                f"Failed to add {type(backend)}, please provide the `save_dir` argument.",
                stacklevel=3,
            )
            return
        backend_name = backend_name or type(backend).__name__
        if backend_name in self._vis_backends:
            raise RuntimeError(f"vis_backend name {backend_name} already exists")
        self._vis_backends[backend_name] = backend
        if required:
            self._required.add(backend_name)

    @classmethod
    def get_instance(cls, name: str, **kwargs: Any) -> Visualizer:
        """Get or create the instance ``name``; a subclass instance is also found through
        ``Visualizer.get_current_instance()`` (as in MMEngine)."""
        instance = super().get_instance(name, **kwargs)
        Visualizer._instance_dict[name] = instance
        return instance

    # ------------------------------------------------------------------ properties

    @property
    def dataset_meta(self) -> dict[str, Any] | None:
        """Meta information of the dataset (class names, palette), for subclasses that draw."""
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, dataset_meta: dict[str, Any] | None) -> None:
        self._dataset_meta = dataset_meta

    @property
    def vis_backends(self) -> dict[str, BaseVisBackend]:
        """The backends by name (disabled ones included)."""
        return dict(self._vis_backends)

    @property
    def failed_backends(self) -> dict[str, BaseException]:
        """Backends disabled after an error, with the error."""
        return dict(self._failed)

    def get_backend(self, name: str) -> BaseVisBackend | None:
        """The backend called ``name``, or None."""
        return self._vis_backends.get(name)

    def set_image(self, image: Any) -> None:
        """Keep ``image`` (RGB ``uint8``, ``(H, W, 3)``) as the image subclasses draw on."""
        if image is None:
            raise ValueError("image must not be None")
        self._image = image

    def get_image(self) -> Any:
        """The image set with :meth:`set_image`.

        Raises:
            ValueError: No image was set.
        """
        if self._image is None:
            raise ValueError("No image set; call set_image() first")
        return self._image

    # ------------------------------------------------------------------ recording

    def _call_backends(self, method: str, *args: Any, **kwargs: Any) -> None:
        if get_rank() != 0:  # MMEngine's master_only
            return
        for name, backend in self._vis_backends.items():
            if name in self._failed:
                continue
            try:
                getattr(backend, method)(*args, **kwargs)
            except Exception as exc:
                if name in self._required:
                    raise
                self._failed[name] = exc
                print_log(
                    f"Vis backend {name!r} ({type(backend).__name__}) failed in {method}(): "
                    f"{type(exc).__name__}: {exc}. It is disabled for the rest of the run; "
                    "training goes on (set required=True in its config to stop on such errors "
                    "instead).",
                    logger="current",
                    level=logging.ERROR,
                )

    def add_config(self, config: Any, **kwargs: Any) -> None:
        """Record the config."""
        self._call_backends("add_config", config, **kwargs)

    def add_graph(self, model: Any, data_batch: Sequence[dict[str, Any]], **kwargs: Any) -> None:
        """Record the model graph (backends that support it)."""
        self._call_backends("add_graph", model, data_batch, **kwargs)

    def add_image(self, name: str, image: Any, step: int = 0) -> None:
        """Record an RGB ``uint8`` image of shape ``(H, W, 3)``."""
        self._call_backends("add_image", name, image, step)

    def add_scalar(self, name: str, value: Any, step: int = 0, **kwargs: Any) -> None:
        """Record one scalar."""
        self._call_backends("add_scalar", name, value, step, **kwargs)

    def add_scalars(
        self,
        scalar_dict: dict[str, Any],
        step: int = 0,
        file_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Record several scalars; file-writing backends also append them to ``file_path``."""
        self._call_backends("add_scalars", scalar_dict, step, file_path, **kwargs)

    def add_datasample(
        self,
        name: str,
        image: Any,
        data_sample: Any = None,
        draw_gt: bool = True,
        draw_pred: bool = True,
        show: bool = False,
        wait_time: float = 0,
        step: int = 0,
    ) -> None:
        """Draw a data sample; task libraries override this (it does nothing here)."""

    def close(self) -> None:
        """Close every backend; a failure of a required backend is raised after all closed."""
        error: BaseException | None = None
        for name, backend in self._vis_backends.items():
            try:
                backend.close()
            except Exception as exc:
                if name in self._required and error is None:
                    error = exc
                elif name not in self._failed:
                    print_log(
                        f"Vis backend {name!r} ({type(backend).__name__}) failed to close: "
                        f"{type(exc).__name__}: {exc}",
                        logger="current",
                        level=logging.ERROR,
                    )
        if error is not None:
            raise error
