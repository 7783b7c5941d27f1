"""The WSGI application gunicorn serves: the AML inference server behind the key gate."""

from azureml_inference_server_http.server.entry import app as aml_app
from modelplane_runtime.gate import KeyGate

app = KeyGate.from_environment(aml_app.wsgi_app if hasattr(aml_app, "wsgi_app") else aml_app)
