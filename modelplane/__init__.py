"""Modelplane: machine-learning models as web services, declared in stacks/<stack>.yaml."""
