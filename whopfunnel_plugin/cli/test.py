"""`whopfunnel test [PATH...]`: scripted conversations against funnels, offline, with
block, option and escalation coverage; `--junit` for CI, `--coverage-out` for `graph`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import click

from ..errors import FunnelError
from ..funnel.catalog import TEST_SUFFIXES, expand
from ..funnel.model import load_funnel
from ..funnel.traffic import Coverage, coverage
from .options import config_option, current_config, plugin_context, plural
from .testfile import funnel_for, is_test_file, load_test_file, tests_for
from .testing import run_cases


def _targets(paths: tuple[str, ...]) -> list[tuple[Path, Path | None]]:
    """(funnel file, its test file or None), from files and folders of either."""
    found: dict[Path, Path | None] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for test in sorted(p for p in path.iterdir() if p.name.endswith(TEST_SUFFIXES)):
                found[funnel_for(test)] = test
            for funnel in expand([path]):
                found.setdefault(funnel, tests_for(funnel))
        elif is_test_file(path):
            found[funnel_for(path)] = path
        else:
            found.setdefault(path, tests_for(path))
    return list(found.items())


def _line(name: str, part) -> str:
    return f"{name} {part.covered}/{part.total} ({part.percent:.0f}%)"


@click.command("test")
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False),
              help="Write a JUnit XML report here (for CI).")
@click.option("--coverage-out", "coverage_path", type=click.Path(dir_okay=False),
              help="Write what was exercised as JSON (for `whopfunnel graph --coverage`).")
@click.option("--min-coverage", type=click.FloatRange(0, 100), default=None,
              help="Fail when block or option coverage of a funnel is below this percentage.")
@config_option
def test(paths, junit_path, coverage_path, min_coverage) -> None:
    """Run the conversations in NAME.test.yaml against NAME.yaml (default: the funnels folder)."""
    config = current_config()
    extra = plugin_context(config)
    targets = _targets(paths or tuple(str(p) for p in config.funnel_paths()) or ("funnels",))
    if not targets:
        raise click.ClickException("no funnels to test")
    context = dict(ladders=config.ladders, validators=extra["validators"],
                   template_vars=extra["template_vars"])
    problems, loaded = [], []
    for funnel_path, test_path in targets:
        try:
            funnel = load_funnel(funnel_path, **context)
        except FunnelError as exc:
            problems += exc.problems
            continue
        cases = []
        if test_path is not None:
            tests, found = load_test_file(test_path)
            problems += found
            cases = tests.cases if tests else []
        loaded.append((funnel, test_path, cases))
    if problems:
        raise FunnelError(problems)
    suites, report, low = [], {}, []
    passed = failed = 0
    for funnel, test_path, cases in loaded:
        click.echo(f"{test_path or funnel.file} (funnel {funnel.id})")
        results, traffic = run_cases(config, funnel, cases) if cases else ([], None)
        if not cases:
            click.echo(f"  no tests: add {Path(funnel.file).with_suffix('.test.yaml')}")
        for r in results:
            click.echo(f"  {'ok  ' if r.passed else 'FAIL'}  {r.case.name}")
            for line in r.failure:
                click.echo(f"        {line}")
            passed += r.passed
            failed += not r.passed
        cov = coverage(funnel, traffic) if traffic else coverage(funnel, _empty())
        _show_coverage(cov)
        if min_coverage is not None:
            low += [f"{funnel.id}: {name} {part.percent:.0f}%"
                    for name, part in (("blocks", cov.blocks), ("options", cov.options))
                    if part.percent < min_coverage]
        suites.append((funnel, test_path, results))
        report[funnel.id] = {"file": funnel.file, "version": funnel.version,
                             "traffic": (traffic or _empty()).to_json()}
    click.echo(f"{plural(passed + failed, 'test')}: {passed} passed, {failed} failed")
    if junit_path:
        _write_junit(junit_path, suites)
    if coverage_path:
        Path(coverage_path).write_text(json.dumps({"whopfunnel_coverage": 1, "funnels": report},
                                                  indent=1) + "\n")
    if low:
        click.echo(f"coverage below --min-coverage {min_coverage:g}%: {'; '.join(low)}", err=True)
    if failed or low:
        sys.exit(1)


def _empty():
    from ..funnel.traffic import Traffic

    return Traffic()


def _show_coverage(cov: Coverage) -> None:
    click.echo(f"  coverage: {_line('blocks', cov.blocks)}, {_line('options', cov.options)}, "
               f"{_line('escalation steps', cov.steps)}")
    missing = cov.blocks.missing + cov.options.missing + cov.steps.missing
    if missing:
        click.echo(f"  never exercised: {', '.join(missing)}")


def _write_junit(path: str, suites) -> None:
    root = ET.Element("testsuites", name="whopfunnel test")
    for funnel, test_path, results in suites:
        failures = sum(not r.passed for r in results)
        suite = ET.SubElement(root, "testsuite", name=str(test_path or funnel.file),
                              tests=str(len(results)), failures=str(failures), errors="0")
        for r in results:
            case = ET.SubElement(suite, "testcase", classname=f"funnel.{funnel.id}", name=r.case.name)
            if not r.passed:
                failure = ET.SubElement(case, "failure", message=r.failure[0])
                failure.text = "\n".join(r.failure + ["", "transcript:"] + r.transcript)
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
