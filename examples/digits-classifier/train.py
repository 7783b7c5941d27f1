"""Train a small classifier: logistic regression on scikit-learn's 8x8 digits."""

from pathlib import Path

import joblib
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

images, labels = load_digits(return_X_y=True)
model = LogisticRegression(max_iter=2000).fit(images / 16.0, labels)
joblib.dump(model, Path(__file__).parent / "model" / "digits_model.pkl")
