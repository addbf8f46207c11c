"""Iris: make a dataset, train one classifier per learning rate side by side, keep the best,
and register it when it is accurate enough.

Run it on this machine (each step is a tracked run; a second run reuses cached steps):

    slipway pipelines run examples/pipelines/iris.py --param rows=5000

Re-run only what failed, or compile it for Kubeflow Pipelines:

    slipway pipelines resume <run id>
    slipway pipelines compile examples/pipelines/iris.py --format kfp -o iris.yaml

Each component imports what it needs inside its body: a step runs in a process (or container)
of its own, with nothing of this module but the function.
"""

from slipway.pipelines import (
    Dataset,
    Input,
    Model,
    Output,
    collected,
    component,
    condition,
    parallel_for,
    pipeline,
)


@component(packages=["scikit-learn"], cpu=1, memory="1Gi", retries=2, timeout="10m")
def prepare(rows: int, data: Output[Dataset]):
    """Sample ``rows`` iris flowers (with replacement, plus a little noise) into a CSV file."""
    import numpy as np
    from sklearn.datasets import load_iris

    iris = load_iris()
    rng = np.random.default_rng(0)
    picked = rng.integers(0, len(iris.target), size=rows)
    features = iris.data[picked] + rng.normal(0.0, 0.05, size=(rows, iris.data.shape[1]))
    table = np.column_stack([features, iris.target[picked]])
    header = ",".join([*(n.replace(" (cm)", "").replace(" ", "_") for n in iris.feature_names)])
    np.savetxt(data.path, table, delimiter=",", header=header + ",label", comments="")
    data.metadata["rows"] = rows


@component(packages=["scikit-learn"], cache_version="2")
def train(data: Input[Dataset], lr: float, model: Output[Model]) -> float:
    """Fit a linear classifier by SGD with learning rate ``lr``; returns its accuracy on a
    held-out quarter of the data."""
    import pickle

    import numpy as np
    from sklearn.linear_model import SGDClassifier
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    table = np.loadtxt(data.path, delimiter=",", skiprows=1)
    features, labels = table[:, :-1], table[:, -1].astype(int)
    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=0.25, random_state=0, stratify=labels
    )
    classifier = make_pipeline(
        StandardScaler(),
        SGDClassifier(
            loss="log_loss",
            learning_rate="constant",
            eta0=lr,
            max_iter=50,
            tol=None,
            random_state=0,
        ),
    )
    classifier.fit(x_train, y_train)
    accuracy = float(classifier.score(x_test, y_test))
    with open(model.path, "wb") as out:
        pickle.dump(classifier, out)
    model.metadata.update(lr=lr, accuracy=accuracy)
    print(f"lr={lr}: accuracy {accuracy:.3f}")
    return accuracy


@component
def pick_best(scores: list, models: Input[list[Model]], best: Output[Model]) -> float:
    """Copy the most accurate of ``models`` to ``best``; returns its accuracy."""
    import shutil

    winner = max(range(len(scores)), key=lambda i: scores[i])
    shutil.copyfile(models[winner].path, best.path)
    best.metadata.update(models[winner].metadata)
    print(f"best: model {winner} with accuracy {scores[winner]:.3f}")
    return float(scores[winner])


@component
def register(model: Input[Model], name: str = "iris"):
    """Register the model as a new version of ``name`` in the model registry (from a copy kept
    with this step's run, so the version points at the run that registered it)."""
    import slipway

    run = slipway.active_run()
    slipway.log_artifact(model.path, "model")
    version = slipway.register_model(f"runs:/{run.info.run_id}/model", name)
    print(f"registered {name} version {version.version}")


@pipeline(name="iris")
def iris(rows: int = 1000):
    """Train iris classifiers at three learning rates and register the best."""
    data = prepare(rows=rows)
    with parallel_for([0.01, 0.1, 1.0], parallelism=2) as lr:
        trained = train(data=data.outputs["data"], lr=lr)
    best = pick_best(scores=collected(trained.output), models=collected(trained.outputs["model"]))
    with condition(best.output > 0.9):
        register(model=best.outputs["best"])
