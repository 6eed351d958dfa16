"""Prefect flows wiring components; MLflow tracking and promotion."""
