"""Simulated inverters and meters that are real protocol peers (Modbus, TIC, P1)."""
