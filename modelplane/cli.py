"""The `modelplane` command line: validate, plan, preview, up, drift, destroy, outputs, invoke, migrate,
batch run, affected, model set, logs, keys rotate, token, profile."""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import requests
from pulumi import automation as auto

from modelplane import operations
from modelplane.automation import MissingPluginError, StackRef, on_stack, open_stack, printer
from modelplane.constants import KEY_NAMES, ROTATE_KEY_VARIABLE
from modelplane.crash_watch import CrashWatch, record_live_deployments
from modelplane.credentials import TOKEN_LIFETIME_S, credential_for
from modelplane.destinations import RemoteDestinationError, check_url
from modelplane.engine import BACKEND_URL_VARIABLE, PROJECT_ROOT, default_settings
from modelplane.naming import cluster_resource_name, kubernetes_provider_name
from modelplane.operations import (
    EXIT_DRIFTED,
    EXIT_FAILED,
    EXIT_HAS_CHANGES,
    EXIT_INVALID,
    EXIT_OK,
    OperationError,
    Policies,
)
from modelplane.recovery import recovering
from modelplane.report import SECRET
from modelplane.source import SpecError
from modelplane.spec import StackSpec, load_stack
from modelplane.state_guard import StateError, engine_error_lines, explain_engine_error, refuse_lost_state


class CliError(Exception):
    """A failure to report in one line, with an exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def _print_problems(error: SpecError) -> None:
    for problem in error.problems:
        print(problem, file=sys.stderr)


def _print_warnings(spec: StackSpec) -> None:
    for warning in spec.warnings:
        print(f"warning: {warning}", file=sys.stderr)


def _validate(args: argparse.Namespace) -> int:
    status = EXIT_OK
    for file in args.files:
        try:
            spec = load_stack(Path(file))
        except SpecError as error:
            _print_problems(error)
            status = EXIT_INVALID
            continue
        _print_warnings(spec)
        counts = ", ".join(
            f"{len(getattr(spec, section))} {section}"
            for section in ("models", "images", "clusters", "endpoints", "edge", "fpga", "batch")
            if getattr(spec, section)
        )
        print(f"{file}: valid ({counts or 'empty'})")
    return status


def _migrate(args: argparse.Namespace) -> int:
    from modelplane.migrate import migrate, v1_files_stack

    todo: list[str] = []
    if args.inference_config or args.deployment_config:
        if not (args.inference_config and args.deployment_config) or args.stack or args.file:
            raise CliError("give --stack/--file, or --inference-config with --deployment-config", EXIT_INVALID)
        out = Path(args.out or f"{args.name}-v2")
        models = [Path(m) for m in args.model or []]
        file, todo = v1_files_stack(Path(args.inference_config), Path(args.deployment_config), models, args.name, out)
    elif args.stack or args.file:
        file = _ref(args).file
    else:
        raise CliError("give --stack NAME, --file PATH, or --inference-config F --deployment-config F", EXIT_INVALID)
    spec = load_stack(file)
    # A stack migrates beside its v1 self; v1 files have no stack to stay clear of.
    migration = migrate(spec, Path(args.out or f"{spec.name}-v2"), beside_v1=not todo)
    here = Path.cwd()
    print(
        "wrote:",
        *(f"  {path.relative_to(here) if path.is_relative_to(here) else path}" for path in migration.files),
        sep="\n",
    )
    for title, lines in (("no v2 equivalent", migration.unmapped), ("notes", migration.notes), ("to do", todo)):
        if lines:
            print(f"{title}:", *(f"  {line}" for line in lines), sep="\n")
    return EXIT_OK


def _batch_run(args: argparse.Namespace) -> int:
    from modelplane.batch import BatchError, run_batch, summary_line

    _ref_checked, spec = _checked(args)
    try:
        result = run_batch(spec, args.name, args.input, args.output, printer())
    except BatchError as error:
        raise CliError(str(error)) from None
    print(summary_line(args.name, result))
    return EXIT_OK


def _affected(args: argparse.Namespace) -> int:
    from modelplane.delivery import affected, changed_since, render

    stacks = (
        [Path(f).resolve() for f in args.stacks] if args.stacks else sorted((PROJECT_ROOT / "stacks").glob("*.yaml"))
    )
    missing = [str(file) for file in stacks if not file.is_file()]
    if missing:
        raise CliError(f"no such stack declaration: {', '.join(missing)}", EXIT_INVALID)
    if args.since is None:
        names = [file.stem for file in stacks]
    else:
        try:
            names = affected(stacks, changed_since(args.since))
        except ValueError as error:
            raise CliError(str(error)) from None
    sys.stdout.write(render(stacks, names, args.format))
    return EXIT_OK


def _model_set(args: argparse.Namespace) -> int:
    from modelplane.delivery import set_model_path

    file = _ref(args).file
    before = file.read_text(encoding="utf-8")
    old = set_model_path(file, args.model, args.path)
    try:
        load_stack(file)
    except SpecError:
        file.write_text(before, encoding="utf-8")  # the stack stays as it was
        raise
    print(f"{file.name}: models.{args.model}.path: {old} → {args.path}")
    return EXIT_OK


def _logs(args: argparse.Namespace) -> int:
    from modelplane.logs import LogsError, logs

    _ref_checked, spec = _checked(args)
    try:
        logs(spec, args.endpoint, args.tail, args.follow, lambda line: print(line, flush=True))
    except LogsError as error:
        raise CliError(str(error)) from None
    return EXIT_OK


def _ref(args: argparse.Namespace) -> StackRef:
    ref = StackRef.from_args(args.stack, args.file)
    if not ref.file.is_file():
        raise CliError(f"{ref.file}: no such stack declaration", EXIT_INVALID)
    return ref


def _checked(args: argparse.Namespace) -> tuple[StackRef, StackSpec]:
    """The stack, with its declaration validated before the engine starts."""
    ref = _ref(args)
    return ref, ref.load()


def _policies(args: argparse.Namespace, ref: StackRef) -> Policies:
    return Policies.for_stack(ref, args.policy_config)


def _preview(args: argparse.Namespace) -> int:
    # The program's warnings come with Pulumi's output.
    ref, _spec = _checked(args)
    has_changes = operations.preview(open_stack(ref), _policies(args, ref), args.diff, printer())
    return EXIT_HAS_CHANGES if has_changes and args.detailed_exitcode else EXIT_OK


def _confirm(question: str, assume_yes: bool) -> bool:
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        raise CliError("not a terminal: pass --yes to apply without a prompt")
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def _kubeconfigs(spec: StackSpec) -> dict[str, Path]:
    """The kubeconfigs of the stack's clusters attached by one, by the name of their Kubernetes provider."""
    return {
        kubernetes_provider_name(cluster_resource_name(name)): cluster.attach.kubeconfig
        for name, cluster in spec.clusters.items()
        if cluster.attach is not None and cluster.attach.kubeconfig is not None
    }


def _print_failing_pods(spec: StackSpec) -> None:
    """After a failed update: the pods of the stack's clusters (reached by kubeconfig) that are not Ready."""
    from modelplane.kube_diagnosis import failing_pods

    for kubeconfig in sorted(set(_kubeconfigs(spec).values())):
        try:
            failures = failing_pods(kubeconfig)
        except (OSError, ValueError, requests.RequestException) as error:
            print(f"modelplane: could not read the pods of {kubeconfig}: {error}", file=sys.stderr)
            continue
        for failure in failures:
            for line in failure.lines():
                print(f"modelplane: {line}", file=sys.stderr)


def _up(args: argparse.Namespace) -> int:
    ref, spec = _checked(args)
    _apply(args, ref, spec, refresh=args.refresh)
    return EXIT_OK


def _apply(args: argparse.Namespace, ref: StackRef, spec: StackSpec, refresh: bool = False) -> bool:
    """Preview with the policy pack and apply (after a prompt, unless --yes), as `up` does, first
    reading what runs when `refresh`; whether anything was applied."""
    progress = printer() if not args.yes else None
    if progress is None:
        _print_warnings(spec)  # Pulumi's output, which carries them, is not shown.
    stack = open_stack(ref)
    policies = _policies(args, ref)
    kubeconfigs = _kubeconfigs(spec)
    try:
        with CrashWatch(kubeconfigs.values(), stack.name) as watch:
            outcome = recovering(
                stack,
                lambda: operations.up(
                    stack,
                    policies,
                    lambda _plan: _confirm("Apply these changes?", args.yes),
                    progress,
                    refresh,
                ),
                _note,
                kubeconfigs,
            )
    except auto.CommandError as error:
        if progress is None:
            for line in engine_diagnostics(error):
                print(line, file=sys.stderr)
        for line in watch.stopped_the_update():
            print(f"modelplane: {line}", file=sys.stderr)
        if watch.crashed:
            _record_live_deployments(stack, ref)
        _print_failing_pods(spec)
        raise
    except OperationError as error:
        if error.plan is not None:
            from modelplane.plan.render import render_text

            sys.stdout.write(render_text(error.plan))
        raise CliError(str(error)) from None
    print(outcome.summary if outcome.applied else f"update skipped: {outcome.summary}")
    return outcome.applied


def _record_live_deployments(stack: auto.Stack, ref: StackRef) -> None:
    try:
        record_live_deployments(stack)
    except auto.CommandError as error:
        why = "; ".join(engine_error_lines(error)) or "the engine failed"
        print(
            f"modelplane: could not read the stopped Deployments back into the state ({why});"
            f" `modelplane drift --file {ref.file} --remediate` brings the cluster back to the declaration",
            file=sys.stderr,
        )


def _keys_rotate(args: argparse.Namespace) -> int:
    """Regenerate one key with an update of the stack; the other key keeps working throughout."""
    from modelplane.credentials import CredentialError, check_rotatable

    ref, spec = _checked(args)
    try:
        check_rotatable(spec, args.endpoint)
    except CredentialError as error:
        raise CliError(str(error)) from None
    os.environ[ROTATE_KEY_VARIABLE] = f"{args.endpoint}:{args.key}:{uuid.uuid4().hex[:12]}"
    if not _apply(args, ref, spec):
        print(f"endpoint {args.endpoint}: no key rotated")
        return EXIT_OK
    other = "secondary" if args.key == "primary" else "primary"
    print(f"endpoint {args.endpoint}: {args.key} key rotated; the {other} key is unchanged")
    return EXIT_OK


def _token(args: argparse.Namespace) -> int:
    from modelplane.credentials import CredentialError, token_for

    ref, spec = _checked(args)
    stack = open_stack(ref, create=False)
    outputs = on_stack(stack, auto.Stack.outputs, create=False)
    keys: dict[str, Any] = outputs["endpoint_keys"].value if "endpoint_keys" in outputs else {}
    try:
        print(json.dumps(token_for(spec, args.endpoint, keys, args.lifetime), indent=2))
    except CredentialError as error:
        raise CliError(str(error)) from None
    return EXIT_OK


def _destroy(args: argparse.Namespace) -> int:
    ref = _ref(args)
    stack = open_stack(ref)
    if not _confirm(f"Destroy every resource of stack '{ref.name}'?", args.yes):
        print("nothing destroyed")
        return EXIT_OK
    print(recovering(stack, lambda: operations.destroy(stack, printer()), _note, _declared_kubeconfigs(ref)))
    return EXIT_OK


def _declared_kubeconfigs(ref: StackRef) -> dict[str, Path]:
    """The kubeconfigs the declaration names; none when it no longer loads (a destroy needs none)."""
    try:
        return _kubeconfigs(ref.load())
    except SpecError:
        return {}


def _note(line: str) -> None:
    print(f"modelplane: {line}", file=sys.stderr, flush=True)


def masked(outputs: Mapping[str, auto.OutputValue], show_secrets: bool) -> dict[str, Any]:
    """Stack outputs as plain data, secret ones replaced by [secret] unless asked for."""
    return {name: (SECRET if out.secret and not show_secrets else out.value) for name, out in outputs.items()}


def _outputs(args: argparse.Namespace) -> int:
    stack = open_stack(_ref(args), create=False)
    values = masked(on_stack(stack, auto.Stack.outputs, create=False), args.show_secrets)
    print(json.dumps(values, indent=2, sort_keys=True))
    return EXIT_OK


def _read_data(data: str) -> Any:
    text = Path(data[1:]).read_text(encoding="utf-8") if data.startswith("@") else data
    try:
        return json.loads(text)
    except ValueError as error:
        raise CliError(f"--data is not JSON: {error}", EXIT_INVALID) from None


def _sample_input(swagger_uri: str) -> Any:
    """The example input that the entry script's input_schema put into the service's swagger."""
    check_url(swagger_uri)
    swagger = requests.get(swagger_uri, timeout=30).json()
    example = swagger.get("definitions", {}).get("ServiceInput", {}).get("example")
    if example is None:
        raise CliError(f"{swagger_uri} has no input example (the entry script has no @input_schema)")
    return example


def call_endpoint(endpoint: dict[str, Any], key: str | None, payload: Any, timeout: float = 60) -> requests.Response:
    check_url(endpoint["scoring_uri"])
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return requests.post(endpoint["scoring_uri"], data=json.dumps(payload), headers=headers, timeout=timeout)


def _invoke(args: argparse.Namespace) -> int:
    ref, spec = _checked(args)
    stack = open_stack(ref, create=False)
    outputs = on_stack(stack, auto.Stack.outputs, create=False)
    endpoints: dict[str, Any] = outputs["endpoints"].value if "endpoints" in outputs else {}
    keys: dict[str, Any] = outputs["endpoint_keys"].value if "endpoint_keys" in outputs else {}
    names = sorted(endpoints) if args.all_samples else [args.endpoint]
    if not names or names == [None]:
        raise CliError("name an ENDPOINT or pass --all-samples", EXIT_INVALID)
    status = EXIT_OK
    for name in names:
        if name not in endpoints:
            raise CliError(f"no endpoint '{name}' in stack '{stack.name}'; it has: {', '.join(endpoints) or 'none'}")
        endpoint = endpoints[name]
        payload = _read_data(args.data) if args.data is not None else _sample_input(endpoint["swagger_uri"])
        response = call_endpoint(endpoint, credential_for(spec, name, keys), payload)
        try:
            answer: Any = response.json()
        except ValueError:
            answer = response.text
        prefix = f"{name}: " if args.all_samples else ""
        print(f"{prefix}{json.dumps(answer)}")
        if response.status_code >= 300:
            print(f"{name}: HTTP {response.status_code} from {endpoint['scoring_uri']}", file=sys.stderr)
            status = EXIT_FAILED
    return status


def _profile(args: argparse.Namespace) -> int:
    from modelplane.profile import ProfileError, ProfileRequest, profile, render_text

    ref, spec = _checked(args)
    outputs = on_stack(open_stack(ref, create=False), auto.Stack.outputs, create=False)
    endpoints: dict[str, Any] = outputs["endpoints"].value if "endpoints" in outputs else {}
    keys: dict[str, Any] = outputs["endpoint_keys"].value if "endpoint_keys" in outputs else {}
    if args.endpoint not in endpoints:
        raise CliError(f"no endpoint '{args.endpoint}' in stack '{ref.name}'; it has: {', '.join(endpoints) or 'none'}")
    endpoint = endpoints[args.endpoint]
    check_url(endpoint["scoring_uri"])
    request = ProfileRequest(
        endpoint=args.endpoint,
        scoring_uri=endpoint["scoring_uri"],
        credential=credential_for(spec, args.endpoint, keys),
        payload=_read_data(args.data) if args.data is not None else _sample_input(endpoint["swagger_uri"]),
        levels=args.concurrency,
        seconds=args.seconds,
        target_rps=args.target_rps,
    )
    progress = (lambda line: print(line, file=sys.stderr, flush=True)) if args.format == "text" else None
    try:
        result = profile(spec, request, progress)
    except ProfileError as error:
        raise CliError(str(error)) from None
    print(json.dumps(result.to_json(), indent=2) if args.format == "json" else render_text(result), end="")
    return EXIT_OK


def _levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of whole numbers like 1,2,4,8") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("concurrency levels are whole numbers of at least 1")
    return levels


def _plan(args: argparse.Namespace) -> int:
    from modelplane import plan as planning

    ref = _ref(args)
    spec = ref.load()
    policies = _policies(args, ref)
    if args.offline or args.against:
        result = planning.offline_plan(spec, ref.name, policies.config_file)
        if args.against:
            try:
                baseline = planning.load_baseline(args.against, ref.file, ref.name, policies.config_file)
            except (ValueError, SpecError) as error:
                raise CliError(f"--against {args.against}: {error}") from None
            result = planning.compare(baseline, result)
    else:
        from modelplane.plan.online import online_plan

        progress = printer(sys.stderr) if args.format != "text" or args.out else None
        result = on_stack(open_stack(ref), lambda stack: online_plan(stack, policies.config_file, progress))
    result.warnings = [str(warning) for warning in spec.warnings]
    _emit(planning.render(result, args.format), args.out, "plan")
    if result.mandatory_violations:
        print(f"modelplane: {len(result.mandatory_violations)} mandatory policy violation(s)", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_HAS_CHANGES if args.detailed_exitcode and result.has_changes else EXIT_OK


def _drift(args: argparse.Namespace) -> int:
    from modelplane import drift

    ref = _ref(args)
    stack = open_stack(ref, create=False)
    progress = printer(sys.stderr) if args.format != "text" or args.out else None
    report = on_stack(stack, lambda s: drift.detect(s, progress), create=False)
    _emit(drift.render(report, args.format), args.out, "drift report")
    if not report.drifted:
        return EXIT_OK
    if not args.remediate:
        return EXIT_DRIFTED
    print(
        f"Remediation: refresh the state from what runs, then `up` to bring {len(report.resources)} "
        f"drifted resource(s) of stack '{ref.name}' back to the declaration."
    )
    if not _confirm("Remediate now?", args.yes):
        print("nothing remediated")
        return EXIT_DRIFTED
    policies = _policies(args, ref)
    after = recovering(
        stack, lambda: operations.remediate(stack, ref, policies, printer()), _note, _declared_kubeconfigs(ref)
    )
    sys.stdout.write(drift.render(after, "text"))
    return EXIT_DRIFTED if after.drifted else EXIT_OK


def _add_report_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    parser.add_argument("--out", metavar="FILE", help=f"write the {what} here instead of stdout")


def _add_policy_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy-config", metavar="FILE", help="default: policies/config/<stack>.json")


def _emit(text: str, out: str | None, what: str) -> None:
    if out:
        Path(out).write_text(text, encoding="utf-8")
        print(f"{what} written to {out}")
    else:
        sys.stdout.write(text)


def _add_backend_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend-url",
        metavar="URL",
        help="where stacks' state lives, e.g. a team's azblob://CONTAINER (default: $PULUMI_BACKEND_URL, "
        "else the local file backend in .modelplane/state)",
    )


def _add_stack_options(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--stack", metavar="NAME", help="stacks/NAME.yaml")
    target.add_argument("--file", metavar="PATH", help="a stack declaration anywhere on disk")


def _stack_command(commands: Any, name: str, help_text: str, handler: Any) -> argparse.ArgumentParser:
    """A subcommand on one stack (--stack NAME | --file PATH)."""
    parser: argparse.ArgumentParser = commands.add_parser(name, help=help_text)
    _add_stack_options(parser)
    parser.set_defaults(handler=handler)
    return parser


def _flag(parser: argparse.ArgumentParser, name: str, help_text: str) -> None:
    parser.add_argument(name, action="store_true", help=help_text)


def _add_migrate(commands: Any) -> None:
    migrate = commands.add_parser("migrate", help="write the Azure ML v2 equivalents of a v1 stack or v1 files")
    migrate.add_argument("--stack", metavar="NAME", help="stacks/NAME.yaml")
    migrate.add_argument("--file", metavar="PATH", help="a stack declaration anywhere on disk")
    migrate.add_argument("--inference-config", metavar="FILE", help="an AML v1 inferenceconfig.json")
    migrate.add_argument("--deployment-config", metavar="FILE", help="an AML v1 deploymentconfig.json")
    migrate.add_argument("--model", action="append", metavar="PATH", help="a model file the v1 deploy registered")
    migrate.add_argument("--name", default="endpoint", help="endpoint name for --inference-config (default: endpoint)")
    migrate.add_argument("--out", metavar="DIR", help="where to write (default: ./<stack>-v2)")
    migrate.set_defaults(handler=_migrate)


def _add_batch(commands: Any) -> None:
    batch = commands.add_parser("batch", help="batch scoring jobs")
    batch_commands = batch.add_subparsers(dest="batch_command", required=True, metavar="COMMAND")
    run = _stack_command(batch_commands, "run", "run a declared batch job over local input", _batch_run)
    run.add_argument("name", metavar="NAME", help="the job's name under `batch:`")
    run.add_argument(
        "--input", metavar="DIR|FILE", help="a folder of files or a CSV/Parquet file (default: its `input`)"
    )
    run.add_argument(
        "--output", metavar="DIR|FILE", help="a folder, or the append_row file itself (default: its `output`)"
    )


def _add_delivery(commands: Any) -> None:
    affected = commands.add_parser("affected", help="the stacks a change touches (declaration, models, code)")
    affected.add_argument("--since", metavar="REF", help="a git ref: the change is REF...HEAD (default: every stack)")
    affected.add_argument("--stacks", nargs="*", metavar="FILE", help="stack files (default: stacks/*.yaml)")
    affected.add_argument("--format", choices=("text", "json"), default="text", help="json: with production flags")
    affected.set_defaults(handler=_affected)
    model = commands.add_parser("model", help="a stack's model references")
    model_commands = model.add_subparsers(dest="model_command", required=True, metavar="COMMAND")
    point = _stack_command(model_commands, "set", "point a declared model at a new file or azureml:// URI", _model_set)
    point.add_argument("model", metavar="MODEL", help="the model's name under `models:`")
    point.add_argument("--path", required=True, metavar="PATH|URI", help="relative to the stack file, or azureml://")


def _add_credentials(commands: Any) -> None:
    keys = commands.add_parser("keys", help="an endpoint's keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    rotate = _stack_command(
        key_commands, "rotate", "regenerate one key (the other keeps working) with an update", _keys_rotate
    )
    rotate.add_argument("endpoint", metavar="ENDPOINT", help="endpoint name")
    rotate.add_argument("--key", choices=KEY_NAMES, required=True, help="the key to regenerate")
    _flag(rotate, "--yes", "apply without asking")
    _add_policy_option(rotate)

    token = _stack_command(commands, "token", "print a token for an endpoint with token auth (JSON)", _token)
    token.add_argument("endpoint", metavar="ENDPOINT", help="endpoint name")
    token.add_argument(
        "--lifetime", type=int, default=TOKEN_LIFETIME_S, metavar="SECONDS", help="how long it is valid (default 3600)"
    )


def _add_profile(commands: Any) -> None:
    profile = _stack_command(commands, "profile", "measure a running endpoint and recommend its size", _profile)
    profile.add_argument("endpoint", metavar="ENDPOINT", help="endpoint name")
    profile.add_argument("--data", metavar="JSON|@FILE", help="request body (default: the swagger example)")
    profile.add_argument(
        "--concurrency", type=_levels, default=[1, 2, 4, 8], metavar="1,2,4,8", help="concurrency levels, in order"
    )
    profile.add_argument("--seconds", type=float, default=5.0, help="how long each level runs (default 5)")
    profile.add_argument("--target-rps", type=float, metavar="N", help="also recommend replicas for N requests/s")
    profile.add_argument("--format", choices=("text", "json"), default="text")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelplane", description="Deploy machine-learning models as web services, declaratively."
    )
    _add_backend_option(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser("validate", help="check stack declarations; exit 2 when invalid")
    validate.add_argument("files", nargs="+", metavar="FILE", help="stacks/<name>.yaml")
    validate.set_defaults(handler=_validate)

    preview = _stack_command(commands, "preview", "show what `up` would change", _preview)
    _flag(preview, "--diff", "show property-level differences")
    _flag(preview, "--detailed-exitcode", "exit 2 when there are changes")
    _add_policy_option(preview)

    plan = _stack_command(commands, "plan", "preview + policy verdicts, as text, Markdown or JSON", _plan)
    _flag(plan, "--offline", "no engine, no credentials: the program under mocks")
    plan.add_argument("--against", metavar="REF", help="compare with a git ref or a saved JSON plan (offline)")
    _add_report_options(plan, "plan")
    _add_policy_option(plan)
    _flag(plan, "--detailed-exitcode", "exit 2 when there are changes")

    up = _stack_command(commands, "up", "deploy the stack", _up)
    _flag(up, "--yes", "apply without asking")
    _flag(up, "--refresh", "first read what runs: put back what was removed or changed outside Modelplane")
    _add_policy_option(up)

    destroy = _stack_command(commands, "destroy", "remove everything the stack deployed", _destroy)
    _flag(destroy, "--yes", "destroy without asking")

    drift = _stack_command(commands, "drift", "report what changed outside Modelplane; exit 2 on drift", _drift)
    _add_report_options(drift, "report")
    _flag(drift, "--remediate", "bring the stack back to its declaration")
    _flag(drift, "--yes", "remediate without asking")
    _add_policy_option(drift)

    outputs = _stack_command(commands, "outputs", "print the stack's outputs as JSON", _outputs)
    _flag(outputs, "--show-secrets", "print keys instead of [secret]")

    _add_migrate(commands)
    _add_batch(commands)
    _add_delivery(commands)

    logs = _stack_command(commands, "logs", "what an endpoint's containers printed", _logs)
    logs.add_argument("endpoint", metavar="ENDPOINT", help="endpoint name")
    logs.add_argument("--tail", type=int, metavar="N", help="only the last N lines of each container")
    _flag(logs, "--follow", "keep printing new lines until interrupted")

    _add_credentials(commands)

    _add_profile(commands)

    invoke = _stack_command(commands, "invoke", "call an endpoint with its key and print the answer", _invoke)
    invoke.add_argument("endpoint", nargs="?", metavar="ENDPOINT", help="endpoint name")
    invoke.add_argument("--data", metavar="JSON|@FILE", help="request body (default: the swagger example)")
    _flag(invoke, "--all-samples", "call every endpoint with its swagger example")
    return parser


def engine_diagnostics(error: auto.CommandError) -> list[str]:
    """The `Diagnostics:` block of the failed command's output (each failing resource and its error),
    for a run whose progress was not shown."""
    text = str(error)
    output = text.partition("\n stdout: ")[2].partition("\n stderr: ")[0]
    block = output.partition("Diagnostics:\n")[2]
    lines = []
    for line in block.splitlines():
        if line and not line.startswith(" "):
            break  # the next section (Policies:, Resources:, Outputs:)
        lines.append(line.rstrip())
    return [line for line in lines if line.strip()]


def _stack_name(args: argparse.Namespace) -> str | None:
    stack, file = getattr(args, "stack", None), getattr(args, "file", None)
    return None if stack is None and file is None else StackRef.from_args(stack, file).name


def _state_advice(args: argparse.Namespace, engine_lines: list[str]) -> str | None:
    """What to do about an engine error about the stack's state or its secrets (None for others)."""
    name = _stack_name(args)
    return explain_engine_error(engine_lines, default_settings(), name) if name is not None else None


def _lost_state(args: argparse.Namespace) -> str | None:
    """Why a stack the engine does not find has state to be restored, if it has (None: never deployed)."""
    name = _stack_name(args)
    try:
        refuse_lost_state(default_settings().backend_url, name or "")
    except StateError as error:
        return f"refused: {error}"
    return None


def _unreachable_advice(args: argparse.Namespace) -> str:
    """What to do when nothing answers at an endpoint's address: `up` diffs against the state, so a
    container or pod removed outside Modelplane stays missing until an `up` that refreshes first."""
    stack, file = getattr(args, "stack", None), getattr(args, "file", None)
    target = f"--stack {stack}" if stack else f"--file {file}" if file else "--stack NAME"
    return (
        "nothing answers at the endpoint's address; if its container or pod was removed outside Modelplane, "
        f"`modelplane drift {target}` reports it and `modelplane up {target} --refresh` puts it back"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.backend_url:
        os.environ[BACKEND_URL_VARIABLE] = args.backend_url
    try:
        return int(args.handler(args))
    except SpecError as error:
        _print_problems(error)
        return EXIT_INVALID
    except CliError as error:
        print(f"modelplane: {error}", file=sys.stderr)
        return error.code
    except auto.StackNotFoundError:
        lost = _lost_state(args)
        print(f"modelplane: {lost or 'the stack has not been deployed yet (run `modelplane up`)'}", file=sys.stderr)
        return EXIT_FAILED
    except auto.CommandError as error:
        # Progress went to stdout as it came; the engine's own error lines (stderr) are not streamed,
        # and are all there is when a non-streaming command (stack selection, config) failed.
        lines = engine_error_lines(error)
        for line in lines:
            print(f"pulumi: {line}", file=sys.stderr)
        advice = _state_advice(args, lines)
        print(f"modelplane: {advice or 'the engine reported a failure; see above'}", file=sys.stderr)
        return EXIT_FAILED
    except StateError as error:
        print(f"modelplane: refused: {error}", file=sys.stderr)
        return EXIT_FAILED
    except requests.RequestException as error:
        print(f"modelplane: request failed: {error}", file=sys.stderr)
        if isinstance(error, requests.ConnectionError) and args.handler in (_invoke, _profile):
            print(f"modelplane: {_unreachable_advice(args)}", file=sys.stderr)
        return EXIT_FAILED
    except MissingPluginError as error:
        print(f"modelplane: {error}", file=sys.stderr)
        return EXIT_FAILED
    except RemoteDestinationError as error:
        print(f"modelplane: refused: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
