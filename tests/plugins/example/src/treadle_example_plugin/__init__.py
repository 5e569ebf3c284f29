"""Example third-party plugin: registers one model lazily and one CLI command."""
