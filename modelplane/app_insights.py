"""Application Insights for ACI and AKS endpoints, wired as AML v1 wires it: the AML inference
server sends its request and log telemetry to the instrumentation key in AML_APP_INSIGHTS_KEY when
AML_APP_INSIGHTS_ENABLED is "true" (azureml_inference_server_http.server.config)."""

from __future__ import annotations

import pulumi

ENABLED_VARIABLE = "AML_APP_INSIGHTS_ENABLED"
KEY_VARIABLE = "AML_APP_INSIGHTS_KEY"


def app_insights_env(
    enabled: bool, instrumentation_key: pulumi.Input[str] | None, secure: bool
) -> list[dict[str, pulumi.Input[str]]]:
    """The two variables for a container (the key as ACI's secureValue when `secure`), or none when
    the endpoint does not ask for Application Insights or the stack has no workspace to send to."""
    if not enabled or instrumentation_key is None:
        return []
    value_field = "secure_value" if secure else "value"
    return [{"name": ENABLED_VARIABLE, "value": "true"}, {"name": KEY_VARIABLE, value_field: instrumentation_key}]
