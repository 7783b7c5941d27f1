"""Entry script for the digits classifier: 8x8 grey images (64 values, 0-16) in, digits out."""

import os

import joblib
import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.schema_decorators import input_schema, output_schema

model = None


def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "digits_model.pkl"))


input_sample = np.zeros((1, 64))
output_sample = np.array([0])


@input_schema("data", NumpyParameterType(input_sample))
@output_schema(NumpyParameterType(output_sample))
def run(data):
    images = np.asarray(data, dtype=float) / 16.0
    return model.predict(images).tolist()
