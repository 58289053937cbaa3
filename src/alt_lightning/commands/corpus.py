"""``alt corpus``: inspect, validate, build, extend and embed the entity corpus.

Sub-commands::

    alt corpus stats    [--corpus SPEC]                    units per kind, coverage per dataset
    alt corpus validate PATH                               exit 1 listing every issue (line, unit, what to do)
    alt corpus build    [--answers A.jsonl ...] [--output PATH] [--check]
    alt corpus merge    --base SPEC --answers FILE... --dataset NAME --classes FILE --output PATH
    alt corpus template (--labels FILE | --dataset NAME)   the per-label question for your own LLM or editor
    alt corpus embed    [--corpus SPEC] --model_name NAME [--pretrained TAG] [--template T] [--cache_dir DIR]

``SPEC`` is a shipped corpus name (``alt-entities-v1``) or a corpus file. ``build`` defaults to the answer
files of ``corpus/answers`` (``_base.jsonl`` first, then the others by name) under the current folder and
writes the shipped corpus of the package. See ``corpus/README.md`` for the whole workflow.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from alt_lightning.commands import ArgumentParser, parse_or_exit_code, report_console
from alt_lightning.text import corpus as corpus_lib
from alt_lightning.text import corpus_authoring as authoring

#: Where ``build`` looks for answer files by default (relative to the current folder, i.e. the repo root).
DEFAULT_ANSWERS_DIR = Path("corpus") / "answers"

#: Answer file always read first: it fixes the canonical body parts.
BASE_ANSWERS = "_base.jsonl"


def default_answer_paths(folder: Path = DEFAULT_ANSWERS_DIR) -> list[Path]:
    """Answer files of ``folder``: ``_base.jsonl`` first, then the other ``*.jsonl`` sorted by name."""
    files = sorted(folder.glob("*.jsonl"))
    return sorted(files, key=lambda p: (p.name != BASE_ANSWERS, p.name))


def _class_lists_for(corpus: corpus_lib.Corpus) -> dict[str, list[str]]:
    """Shipped source lists, plus the labels seen in sources for any other (user) dataset."""
    lists = authoring.shipped_class_lists()
    for record in corpus.records:
        for dataset, labels in record.sources.items():
            if dataset not in authoring.SOURCE_DATASETS:
                seen = lists.setdefault(dataset, [])
                seen += [label for label in labels if label not in seen]
    return lists


def _cmd_stats(args: argparse.Namespace, console: Console) -> int:
    corpus = corpus_lib.load_corpus(args.corpus)
    lists = _class_lists_for(corpus)
    stats = authoring.corpus_stats(corpus, lists, n_fewest=args.fewest)
    console.print(
        f"[bold]{escape(stats.name)}[/bold] version {escape(stats.version)}: {stats.units} units, "
        f"hash {stats.hash[:12]}"
    )

    kinds = Table(title="Units per kind")
    kinds.add_column("kind")
    kinds.add_column("units", justify="right")
    kinds.add_column("share", justify="right")
    for kind, n in stats.units_per_kind.items():
        kinds.add_row(kind, str(n), f"{100 * n / max(stats.units, 1):.1f}%")
    console.print(kinds)

    cov = Table(title="Coverage per dataset (entities linked per class)")
    for col in ("dataset", "classes", "covered", "min", "mean"):
        cov.add_column(col, justify="left" if col == "dataset" else "right")
    for name, d in stats.datasets.items():
        shipped = "" if name in authoring.SOURCE_DATASETS else " (labels seen)"
        cov.add_row(
            escape(name + shipped),
            str(d.classes),
            str(d.covered),
            str(d.min_entities),
            f"{d.mean_entities:.2f}",
        )
    console.print(cov)

    fewest = Table(title=f"The {len(stats.fewest)} classes with fewest entities")
    fewest.add_column("dataset")
    fewest.add_column("class")
    fewest.add_column("entities", justify="right")
    for dataset, label, n in stats.fewest:
        fewest.add_row(escape(dataset), escape(label), str(n))
    console.print(fewest)
    return 0


def _print_issues(console: Console, issues: list[corpus_lib.CorpusIssue]) -> None:
    for issue in issues:
        console.print(escape(str(issue)), soft_wrap=True)
    console.print(f"[red]{len(issues)} issue(s)[/red]")


def _cmd_validate(args: argparse.Namespace, console: Console) -> int:
    path = corpus_lib.resolve_corpus_spec(args.path)
    issues = corpus_lib.validate_corpus_file(path)
    if issues:
        _print_issues(console, issues)
        console.print(f"{escape(str(path))} is invalid; fix the lines above (or rebuild with `alt corpus build`).")
        return 1
    corpus = corpus_lib.load_corpus(path)
    console.print(f"{escape(str(path))}: valid, {len(corpus)} records, hash {corpus.short_hash}", soft_wrap=True)
    return 0


def _print_warnings(console: Console, warnings: list[str]) -> None:
    for w in warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(w)}", soft_wrap=True)


def _cmd_build(args: argparse.Namespace, console: Console) -> int:
    answers = [Path(p) for p in args.answers] if args.answers else default_answer_paths()
    if not answers:
        console.print(
            f"[red]error:[/red] no answer files in {DEFAULT_ANSWERS_DIR}/; run from the repository root or "
            "pass --answers FILE ..."
        )
        return 1
    warnings: list[str] = []
    corpus = authoring.build_corpus(
        answers,
        authoring.shipped_class_lists(),
        name=args.name,
        version=args.version,
        description=args.description,
        warnings_out=warnings,
    )
    _print_warnings(console, warnings)
    output = Path(args.output) if args.output else corpus_lib.shipped_corpus_path(args.name)
    if args.check:
        same = output.is_file() and output.read_bytes() == corpus.to_jsonl().encode("ascii")
        verdict = "matches" if same else "[red]differs from[/red]"
        console.print(f"rebuild from {len(answers)} answer file(s) {verdict} {escape(str(output))}", soft_wrap=True)
        return 0 if same else 1
    corpus_lib.write_corpus(corpus, output)
    console.print(
        f"wrote {escape(str(output))}: {len(corpus)} records from {len(answers)} answer file(s), "
        f"hash {corpus.short_hash}, {len(warnings)} kind conflict(s)",
        soft_wrap=True,
    )
    return 0


def _cmd_merge(args: argparse.Namespace, console: Console) -> int:
    base = corpus_lib.load_corpus(args.base)
    warnings: list[str] = []
    merged = authoring.merge_corpus(
        base,
        [Path(p) for p in args.answers],
        args.dataset,
        authoring.load_class_list(args.classes),
        warnings_out=warnings,
    )
    _print_warnings(console, warnings)
    corpus_lib.write_corpus(merged, args.output)
    console.print(
        f"wrote {escape(str(args.output))}: {escape(merged.name)} {escape(merged.version)}, "
        f"{len(merged)} records ({len(merged) - len(base)} new), hash {merged.short_hash}",
        soft_wrap=True,
    )
    return 0


def _cmd_template(args: argparse.Namespace, console: Console) -> int:
    labels = authoring.load_class_list(args.labels if args.labels else args.dataset)
    # Plain stdout, not rich: the prompts hold JSON braces and brackets that must come out verbatim.
    sys.stdout.write(authoring.render_prompts(labels))
    return 0


def _cmd_embed(args: argparse.Namespace, console: Console) -> int:
    from alt_lightning.model.backbone import load_clip  # torch/open_clip only when needed
    from alt_lightning.text.embeddings import cached_text_embeddings

    corpus = corpus_lib.load_corpus(args.corpus)
    pretrained = None if str(args.pretrained).lower() in ("", "none", "null") else args.pretrained
    emb, info = cached_text_embeddings(
        model_name=args.model_name,
        pretrained=pretrained,
        texts=corpus.texts(args.template),
        clip_model=load_clip(args.model_name, pretrained),
        cache_dir=args.cache_dir,
        return_info=True,
    )
    console.print(f"corpus {escape(corpus.name)} {escape(corpus.version)} ({corpus.short_hash}): {len(corpus)} texts")
    console.print(f"embeddings shape: {tuple(emb.shape)}")
    console.print(f"cache file: {escape(str(info['path']))}", soft_wrap=True)
    console.print(f"cache hit: {info['hit']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``alt corpus`` argument parser."""
    parser = ArgumentParser(
        prog="alt corpus", description="Inspect, validate, build, extend and embed the ALT entity corpus."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help="what to do with a corpus")

    def add(name: str, func: Callable[[argparse.Namespace, Console], int], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    p = add("stats", _cmd_stats, "Units per kind, coverage per dataset, the classes with fewest entities.")
    p.add_argument("--corpus", default=corpus_lib.DEFAULT_CORPUS, help="shipped corpus name or corpus file")
    p.add_argument("--fewest", type=int, default=10, help="how many least-covered classes to list")

    p = add("validate", _cmd_validate, "Check a corpus file; exit 1 listing every issue.")
    p.add_argument("path", help="corpus file (or shipped corpus name)")

    p = add("build", _cmd_build, "Build a corpus from answer files against the shipped class lists.")
    p.add_argument(
        "--answers",
        nargs="+",
        help=f"answer files, in priority order (default: {DEFAULT_ANSWERS_DIR}/*.jsonl, {BASE_ANSWERS} first)",
    )
    p.add_argument("--output", help="corpus file to write (default: the package's shipped corpus)")
    p.add_argument("--name", default=corpus_lib.DEFAULT_CORPUS, help="the corpus name written in its header")
    p.add_argument("--version", default=authoring.DEFAULT_VERSION, help="the corpus version written in its header")
    p.add_argument("--description", default=authoring.DEFAULT_DESCRIPTION, help="the description in its header")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if the output would change")

    p = add("merge", _cmd_merge, "Extend a corpus with answers for a new dataset.")
    p.add_argument("--base", default=corpus_lib.DEFAULT_CORPUS, help="corpus to extend (name or file)")
    p.add_argument("--answers", nargs="+", required=True, help="answer files for the new dataset's labels")
    p.add_argument("--dataset", required=True, help="name of the new dataset (its labels' source key)")
    p.add_argument("--classes", required=True, help="class-name file of the new dataset, one label per line")
    p.add_argument("--output", required=True, help="corpus file to write")

    p = add("template", _cmd_template, "Print the per-label question for your own LLM or editor.")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--labels", help="class-name file, one label per line")
    group.add_argument("--dataset", help="a shipped class list (kinetics400, ucf101, ...)")

    p = add("embed", _cmd_embed, "Embed a corpus with a CLIP text encoder into the embedding cache.")
    p.add_argument("--corpus", default=corpus_lib.DEFAULT_CORPUS, help="shipped corpus name or corpus file")
    p.add_argument("--model_name", required=True, help="open_clip architecture, e.g. ViT-B-16")
    p.add_argument("--pretrained", default=None, help="open_clip pretrained tag or weights file (none: random)")
    p.add_argument("--template", default=corpus_lib.DEFAULT_TEXT_TEMPLATE, help="text per record")
    p.add_argument("--cache_dir", default=None, help="cache folder (default: $ALT_CACHE_DIR or ~/.cache)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``alt corpus`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    args = parse_or_exit_code(build_parser(), argv)
    if isinstance(args, int):
        return args
    console = report_console()
    try:
        return args.func(args, console)
    except corpus_lib.CorpusError as e:
        _print_issues(console, e.issues)
        return 1
    except (FileNotFoundError, ValueError) as e:
        console.print(f"[red]error:[/red] {escape(str(e))}", soft_wrap=True)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
