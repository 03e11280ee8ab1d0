"""Community ingest: verify signed readings and claims from the broker, store them once.

`pipeline` decides (pure), `store` writes (SQL), `runner` talks MQTT (paho), `influx`
exports time series.
"""
