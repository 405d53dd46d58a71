"""Parts of bench/service.py."""
