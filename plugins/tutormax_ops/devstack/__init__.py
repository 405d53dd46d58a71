"""Development and CI only: self-started servers (`stack`), the demo and the SMTP sink.

No runtime module imports this package; an Airflow worker never needs it.
"""
