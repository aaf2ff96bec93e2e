"""(A copy of shared/bench/census_data.py: the same rows for every framework.)

Deterministic synthetic census-like table with a learnable signal.

Same rows for every framework under comparison: numeric, small-vocabulary
categorical, high-cardinality hashed, and an interaction the linear model
can only learn through a crossed column.
"""
import numpy as np
import pandas as pd

WORKCLASS = ["Private", "Self-emp-not-inc", "Self-emp-inc", "Federal-gov",
             "Local-gov", "State-gov", "Without-pay", "Never-worked"]
EDUCATION = ["Bachelors", "Some-college", "11th", "HS-grad", "Prof-school",
             "Assoc-acdm", "Assoc-voc", "9th", "7th-8th", "12th", "Masters",
             "1st-4th", "10th", "Doctorate", "5th-6th", "Preschool"]
OCCUPATION = ["Tech-support", "Craft-repair", "Other-service", "Sales",
              "Exec-managerial", "Prof-specialty", "Handlers-cleaners",
              "Machine-op-inspct", "Adm-clerical", "Farming-fishing",
              "Transport-moving", "Priv-house-serv", "Protective-serv",
              "Armed-Forces"]
RELATIONSHIP = ["Wife", "Own-child", "Husband", "Not-in-family",
                "Other-relative", "Unmarried"]
NUMERIC = ["age", "hours_per_week", "capital_gain", "education_num"]
CATEGORICAL = {"workclass": WORKCLASS, "education": EDUCATION,
               "occupation": OCCUPATION, "relationship": RELATIONSHIP}
HASHED = "zipcode"
LABEL = "income_over_50k"


def make(n_rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "age": rng.integers(17, 91, n_rows).astype(np.float32),
        "hours_per_week": rng.integers(1, 100, n_rows).astype(np.float32),
        "capital_gain": np.round(np.minimum(rng.lognormal(3, 1.5, n_rows), 99999)).astype(np.float32),
        "education_num": rng.integers(1, 17, n_rows).astype(np.float32),
    })
    for name, vocab in CATEGORICAL.items():
        df[name] = np.asarray(vocab, dtype=object)[rng.integers(0, len(vocab), n_rows)]
    zips = rng.zipf(1.3, n_rows) % 20000
    df[HASHED] = np.char.add("z", zips.astype(str)).astype(object)
    edu = df["education"].map({v: i for i, v in enumerate(EDUCATION)}).to_numpy()
    occ = df["occupation"].map({v: i for i, v in enumerate(OCCUPATION)}).to_numpy()
    cross = np.sin(edu * 7.0 + occ * 3.0)          # needs the cross to learn
    z = (0.04 * (df["age"] - 45) + 0.03 * (df["hours_per_week"] - 40)
         + 0.15 * np.log1p(df["capital_gain"]) + 0.2 * (df["education_num"] - 9)
         + 1.2 * cross + 0.5 * (zips % 7 == 0) - 1.0)
    p = 1.0 / (1.0 + np.exp(-z.to_numpy()))
    df[LABEL] = (rng.random(n_rows) < p).astype(np.int64)
    return df
