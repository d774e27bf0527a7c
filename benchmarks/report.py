"""Collect benchmarks/results/{prepare,train,score,loader,deep_data,scale,peers}.json into one summary.json and a
markdown table.

`make bench` runs the three benchmarks and then this script; `--readme` also rewrites the table in
benchmarks/README.md between its BENCHMARK-TABLE markers, so the README shows the last measured run.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness import ROOT, bench_parser, results_dir

RESULTS = ("prepare", "train", "score", "loader", "deep_data", "scale", "peers")  # the files the table is built from
BEGIN, END = "<!-- BENCHMARK-TABLE:BEGIN -->", "<!-- BENCHMARK-TABLE:END -->"


def rows(results: dict) -> list[dict]:
    """One row per measured ratio or size: what, measured, target, met."""
    out = []

    def add(benchmark: str, what: str, measured: float, target: float, higher_is_better: bool = True) -> None:
        met = measured >= target if higher_is_better else measured <= target
        op = "≥" if higher_is_better else "≤"
        out.append(
            {"benchmark": benchmark, "what": what, "measured": measured, "target": f"{op} {target:g}", "met": met}
        )

    if prepare := results.get("prepare"):
        what = f"{prepare['rows']:,} dirty rows ({prepare['csv_mb']} MB CSV)"
        targets = prepare["targets"]
        add(
            "prepare",
            f"{what}: Spark local[2] ÷ pandas, rows/s",
            prepare["ratio_spark_local2_vs_pandas"],
            targets["spark_local2_vs_pandas"],
        )
        add("prepare", "local[2] ÷ local[1], rows/s", prepare["ratio_local2_vs_local1"], targets["local2_vs_local1"])
        passes = prepare["results"]["spark_local2"]["passes_over_input"]
        add("prepare", "passes over the raw input", passes, 1.0, higher_is_better=False)
    if train := results.get("train"):
        targets = train["targets"]
        add(
            "train",
            "pipeline ÷ bare torch loop, samples/s per worker",
            train["pipeline_vs_bare"],
            targets["pipeline_vs_bare"],
        )
        for run, efficiency in train["scaling_efficiency_2_workers"].items():
            add("train", f"2-worker scaling efficiency, {run}", efficiency, targets["scaling_efficiency"])
        add(
            "train", "loader ÷ 1-worker training, samples/s", train["loader_vs_training"], targets["loader_vs_training"]
        )
        add(
            "train",
            f"loader peak RSS MB, {train['loader']['rows']:,}-row epoch",
            round(train["loader"]["peak_rss_mb"]),
            targets["loader_peak_rss_mb"],
            higher_is_better=False,
        )
    if score := results.get("score"):
        add(
            "score",
            f"spark_udf local[2] ÷ in-process predict, {score['rows']:,} rows "
            f"(Arrow batch {score['best_arrow_batch']:,})",
            score["ratio"],
            score["target"],
        )
    if loader := results.get("loader"):
        for name, data in loader["datasets"].items():
            add("loader", f"{name}: ours ÷ 1-worker training (2 threads), rows/s", data["ours_vs_training"], 20)
            if "ours_vs_ray" in data:
                target = 3 if name == "tabular" else 1
                add("loader", f"{name}: ours ÷ Ray Data iter_torch_batches, rows/s", data["ours_vs_ray"], target)
    if scale := results.get("scale"):
        _scale_rows(scale, add)
    if peers := results.get("peers"):
        for backend, ratio in peers["ours_vs_ray_train_2_workers"].items():
            what = f"ours ({backend}) ÷ Ray Train TorchTrainer, 2 workers, samples/s (one run)"
            add("peers", what, ratio, peers["goal_ours_vs_ray_train_2_workers"])
    if deep := results.get("deep_data"):
        if digits := deep.get("digits"):
            accuracy = round(digits["test"]["test_accuracy"], 4)
            published, pixels_lr = digits["published_simple_cnn"], digits["logistic_regression_raw_pixels"]
            add("demo", "digits: cnn test accuracy vs the published simple CNN", accuracy, published)
            add("demo", "digits: cnn ÷ logistic regression on raw pixels, accuracy", round(accuracy / pixels_lr, 3), 1)
        if reviews := deep.get("reviews"):
            ratio = round(reviews["test"]["test_auc"] / reviews["logistic_regression_bow_auc"], 3)
            add("demo", "reviews: text_cnn ÷ bag-of-words logistic regression, test AUC", ratio, 1)
        if decoding := deep.get("image_decoding"):
            add("prepare", "image source ÷ plain Pillow loop, decoded images/s per core", decoding["per_core_ratio"], 1)
    return out


def _scale_rows(scale: dict, add) -> None:
    """Cost per row flat across sizes (overall and marginal), and rank/pyfunc memory independent of the size."""
    sizes = scale["sizes"]
    span = f"{sizes[0]['rows'] / 1e6:g}M → {sizes[-1]['rows'] / 1e6:g}M rows"
    for stage, flatness in scale["per_row_cost_max_over_min"].items():
        name = stage.replace("_", " ")
        add("scale", f"{name}: s per million rows, largest ÷ smallest, {span}", flatness, 1.15, False)
        marginal = [m["s_per_million"] for m in scale.get("marginal_cost", {}).get(stage, [])]
        if len(marginal) > 1:
            ratio = round(max(marginal) / min(marginal), 3)
            add("scale", f"{name}: marginal s per million rows, largest ÷ smallest, {span}", ratio, 1.15, False)
    for kind, stage in (("rank", "train"), ("python_worker", "score")):
        peaks = [s[f"peak_mb_{stage}"][kind] for s in sizes]
        if not peaks[0]:  # a process too short-lived for the sampler (smoke sizes)
            continue
        name = "training rank" if kind == "rank" else "pyfunc worker"
        add("scale", f"{name} peak RSS, largest size ÷ smallest, {span}", round(peaks[-1] / peaks[0], 3), 1.15, False)


def markdown(table: list[dict]) -> str:
    lines = ["| benchmark | measure | measured | target | met |", "|---|---|---|---|---|"]
    for row in table:
        lines.append(
            f"| {row['benchmark']} | {row['what']} | {row['measured']:g} | {row['target']} | "
            f"{'yes' if row['met'] else '**no**'} |"
        )
    return "\n".join(lines) + "\n"


def load_results(folder: Path) -> dict:
    return {
        name: json.loads((folder / f"{name}.json").read_text())
        for name in RESULTS
        if (folder / f"{name}.json").exists()
    }


def replace_readme_table(readme: str, table_md: str) -> str:
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"benchmarks/README.md has no {BEGIN} ... {END} markers around the benchmark table")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table_md}{END}{tail}"


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--readme", action="store_true", help="also rewrite the table in benchmarks/README.md")
    args = parser.parse_args(argv)
    if args.smoke and args.readme:
        raise SystemExit("--readme with --smoke would put a smoke run's figures into benchmarks/README.md")
    folder = results_dir(args)
    results = load_results(folder)
    table = rows(results)
    (folder / "summary.json").write_text(json.dumps({"results": results, "table": table}, indent=2))
    table_md = markdown(table)
    (folder / "summary.md").write_text(table_md)
    if args.readme:
        readme = ROOT / "benchmarks" / "README.md"
        readme.write_text(replace_readme_table(readme.read_text(), table_md))
    print(table_md, end="")


if __name__ == "__main__":
    main()
