"""vlbench: zero-shot evaluation harness for vision-language models."""

__version__ = "0.1.0"
