"""The Pulumi program: load stacks/<stack>.yaml, build one component per item, export outputs."""

from modelplane.startup import run

run()
