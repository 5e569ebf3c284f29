"""The logging components treadle-core registers, by import path (read by the built-in plugin).

Importing this module imports nothing: registration stays cheap.
"""

#: Root-registry attribute name → {registered name: "module:Attr"}.
COMPONENTS: dict[str, dict[str, str]] = {
    "LOG_PROCESSORS": {
        "LogProcessor": "treadle.core.logging.log_processor:LogProcessor",
    },
}
