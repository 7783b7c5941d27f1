"""Train the seed's model: Ridge regression on the 10 features of scikit-learn's diabetes data."""

from pathlib import Path

import joblib
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

features, target = load_diabetes(return_X_y=True)
model = Ridge(alpha=0.1).fit(features, target)
joblib.dump(model, Path(__file__).parent / "model" / "sklearn_regression_model.pkl")
