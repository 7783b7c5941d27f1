"""The WSGI application gunicorn serves: the AML inference server behind the key gate, scoring
requests counted for Prometheus (metrics.py), log lines written in batches (logbatch.py)."""

from azureml_inference_server_http.server.entry import app as aml_app
from modelplane_runtime.gate import KeyGate
from modelplane_runtime.logbatch import with_batched_logging
from modelplane_runtime.metrics import ScoringMetrics

# Importing the AML server configured its logging; batching replaces the handlers it set up.
gated = KeyGate.from_environment(aml_app.wsgi_app if hasattr(aml_app, "wsgi_app") else aml_app)
app = with_batched_logging(ScoringMetrics.wrap(gated))
