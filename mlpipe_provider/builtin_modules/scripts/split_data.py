"""Built-in module "Split Data": the first ``fraction`` of rows to one output, the rest to the other."""

from _common import check_columns, get_run, read_table, start, write_table

MODULE = "Split Data"
args, params = start(MODULE)
frame = read_table(args.dataset)
fraction, seed = params["fraction"], params["random_seed"]
stratify = params["stratify_column"]
if stratify:
    check_columns(MODULE, "params['stratify_column']", frame, [stratify])
if params["randomized_split"]:
    frame = frame.sample(frac=1.0, random_state=seed)
if stratify:
    # the same fraction of every stratum goes first, so both outputs keep the class balance
    groups = frame.groupby(stratify, sort=True, dropna=False)
    first_index = [i for _, g in groups for i in g.index[: round(len(g) * fraction)]]
    first = frame.loc[first_index]
    second = frame.drop(index=first_index)
else:
    cut = round(len(frame) * fraction)
    first, second = frame.iloc[:cut], frame.iloc[cut:]
write_table(first, args.results_dataset1)
write_table(second, args.results_dataset2)
run = get_run()
run.log("Rows in dataset 1", len(first))
run.log("Rows in dataset 2", len(second))
