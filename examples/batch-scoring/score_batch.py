# A batch entry script in Azure ML's ParallelRunStep form: init() once per worker process, then
# run(mini_batch) with a pandas DataFrame of rows (tabular input) or a list of file paths (file input).
import json
import os

import joblib
import pandas as pd

FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "sklearn_regression_model.pkl"))


def run(mini_batch):
    if isinstance(mini_batch, pd.DataFrame):
        # One result per row, in the rows' order: append_row writes them one per line.
        return [f"{value:.6f}" for value in model.predict(mini_batch[FEATURES].to_numpy())]
    results = []
    for path in mini_batch:
        with open(path) as file:
            features = json.load(file)["data"]
        prediction = model.predict([features])[0]
        results.append(f"{os.path.basename(path)}: {prediction:.6f}")
    return results
