"""The discrete-event engine: the only SimPy user. It sequences the model and hands finished columns to telemetry."""
