"""Built-in module "Partition and Sample": the designer's Head and Sampling modes.

Sampling keeps round(rate x rows) rows drawn without replacement (per stratum of the key column
when stratified), in their original order; the seed fixes which, so equal settings give equal
output. The designer's Assign to Folds and Pick Fold keep fold numbers in dataset metadata,
which a CSV table has no place for, and are not offered.
"""

from _common import check_columns, fail, get_run, read_table, start, write_table

MODULE = "Partition and Sample"
args, params = start(MODULE)
frame = read_table(args.dataset)
if params["partition_or_sample_mode"] == "Head":
    result = frame.head(params["number_of_rows_to_select"])
else:
    rate, seed = params["rate_of_sampling"], params["random_seed_for_sampling"]
    if params["stratified_split_for_sampling"]:
        key = params["stratification_key_column_for_sampling"]
        if not key:
            fail(
                MODULE,
                "params['stratification_key_column_for_sampling']",
                "a stratified sample needs a key column",
            )
        check_columns(MODULE, "params['stratification_key_column_for_sampling']", frame, [key])
        picked = []
        for _value, group in frame.groupby(key, sort=True, dropna=False):
            picked += list(group.sample(n=round(rate * len(group)), random_state=seed).index)
    else:
        picked = list(frame.sample(n=round(rate * len(frame)), random_state=seed).index)
    result = frame.loc[sorted(picked)]
write_table(result, args.results_dataset)
get_run().log("Rows", len(result))
