"""The visualization components treadle-core registers, by import path (read by the built-in
plugin). Importing this module imports nothing: registration stays cheap.
"""

_V = "treadle.core.visualization"

#: Root-registry attribute name → {registered name: "module:Attr"}.
COMPONENTS: dict[str, dict[str, str]] = {
    "VISUALIZERS": {"Visualizer": f"{_V}.visualizer:Visualizer"},
    "VISBACKENDS": {"LocalVisBackend": f"{_V}.vis_backend:LocalVisBackend"},
}
