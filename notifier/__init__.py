"""notifier: targeted notification of benefit and subsidy items by SMS, e-mail and letter."""

__version__ = "0.1.0"
__all__ = ["__version__"]
