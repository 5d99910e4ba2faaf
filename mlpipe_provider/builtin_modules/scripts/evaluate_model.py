"""Built-in module "Evaluate Model": metrics of a scored dataset, logged to the run.

Classification logs Accuracy, Precision, Recall, F1 Score (and AUC for two classes) as scalars,
the confusion matrix with ``log_confusion_matrix`` and the ROC curve with ``log_table`` in v1's
chart shapes; regression logs the v1 designer's error metrics. All go to ``metrics.json`` too.
"""

import json
import os

import pandas as pd
from _common import check_columns, fail, get_run, read_table, start, write_table
from sklearn import metrics

MODULE = "Evaluate Model"
args, _params = start(MODULE)
meta_file = os.path.join(args.scored_dataset, "score.json")
if not os.path.isfile(meta_file):
    fail(MODULE, "inputs_map['scored_dataset']", "not the output of a Score Model step")
with open(meta_file, encoding="utf-8") as handle:
    meta = json.load(handle)
frame = read_table(args.scored_dataset)
label = meta["label_column"]
check_columns(MODULE, "inputs_map['scored_dataset']", frame, [label, "Scored Labels"])
truth, predicted = frame[label], frame["Scored Labels"]
run = get_run()
results = {}
if meta["task"] == "classification":
    average = "binary" if len(meta["classes"]) == 2 else "macro"
    positive = meta["classes"][-1] if average == "binary" else 1
    kwargs = {"average": average, "zero_division": 0}
    if average == "binary":
        kwargs["pos_label"] = positive
    results = {
        "Accuracy": metrics.accuracy_score(truth, predicted),
        "Precision": metrics.precision_score(truth, predicted, **kwargs),
        "Recall": metrics.recall_score(truth, predicted, **kwargs),
        "F1 Score": metrics.f1_score(truth, predicted, **kwargs),
    }
    labels = meta["classes"]
    matrix = metrics.confusion_matrix(truth, predicted, labels=labels)
    run.log_confusion_matrix(
        "Confusion matrix",
        {
            "schema_type": "confusion_matrix",
            "schema_version": "1.0.0",
            "data": {"class_labels": [str(c) for c in labels], "matrix": matrix.tolist()},
        },
    )
    if "Scored Probabilities" in frame.columns and truth.nunique() == 2:
        probabilities = frame["Scored Probabilities"]
        results["AUC"] = metrics.roc_auc_score(truth == positive, probabilities)
        fpr, tpr, _ = metrics.roc_curve(truth == positive, probabilities)
        run.log_table(
            "ROC curve", {"False positive rate": fpr.tolist(), "True positive rate": tpr.tolist()}
        )
else:
    error = truth - predicted
    results = {
        "Mean Absolute Error": metrics.mean_absolute_error(truth, predicted),
        "Root Mean Squared Error": float((error**2).mean() ** 0.5),
        "Coefficient of Determination": metrics.r2_score(truth, predicted),
    }
results = {name: float(value) for name, value in results.items()}
for name, value in results.items():
    run.log(name, value)
write_table(pd.DataFrame([results]), args.evaluation_results)
with open(os.path.join(args.evaluation_results, "metrics.json"), "w", encoding="utf-8") as handle:
    json.dump(results, handle, indent=2, sort_keys=True)
print(json.dumps(results, sort_keys=True))
