"""Pulumi dynamic providers for what runs on this machine (no provider plugin binary needed)."""
