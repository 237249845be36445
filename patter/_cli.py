"""The ``patter`` command: serve, call, simulate, doctor, demo.

Exit codes: 0 all went well; 1 a call or a check failed; 2 a usage or configuration
error (the message names the fix). Settings come from the environment and a ``.env``
file in the current folder (``Patter()`` reads ``TWILIO_ACCOUNT_SID``… when not passed).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypedDict

import typer
import typer.core
from dotenv import find_dotenv, load_dotenv
from rich.console import Console
from rich.markup import escape

from patter import _validate
from patter._client import DEFAULT_DRAIN_TIMEOUT_S
from patter._events import Event
from patter._log import configure_logging, mask_number
from patter._simulate import (
    Mode,
    Outbound,
    Turn,
    TurnKind,
    load_in_world,
    run_call,
    script_fake_stt,
)
from patter._target import Target, load_target
from patter.errors import PatterConfigError, TwilioError
from patter.testing.harness import LoopbackWorld

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DTMF_KEYS = "0123456789*#"
TURN_OPTIONS: dict[str, TurnKind] = {"--say": "say", "--dtmf": "dtmf", "--wav": "wav"}

app = typer.Typer(
    help="Put an AI voice agent on a phone line: serve it, call out, simulate a call, "
    "check your settings. Exit codes: 0 ok, 1 a call or check failed, 2 usage or "
    "configuration error.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

TargetArg = Annotated[
    str,
    typer.Argument(
        metavar="TARGET",
        help="Your agent: FILE.py:NAME or MODULE:NAME, e.g. app.py:agent. The module must "
        "define its Patter (phone = Patter(...)) and the agent at module level.",
    ),
]


def _console() -> Console:
    """A console on the current stdout (so test runners capture it)."""
    return Console(highlight=False, soft_wrap=True)


def _line(who: str, text: str) -> None:
    """Print one line of a call: ``caller: …``, ``agent: …`` or ``call: …``."""
    style = {"caller": "cyan", "agent": "green"}.get(who, "dim")
    _console().print(f"[{style}]{who}:[/{style}] {escape(text)}")


def _fail(message: str, code: int) -> typer.Exit:
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"[red]error:[/red] {escape(message)}"
    )
    return typer.Exit(code)


def _run(main: Callable[[], Coroutine[Any, Any, int]]) -> None:
    """Run ``main()``; its return value is the exit code, and Patter's errors map onto
    the documented codes."""
    try:
        code = asyncio.run(main())
    except PatterConfigError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    except TwilioError as exc:
        raise _fail(str(exc), EXIT_FAILED) from None
    except KeyboardInterrupt:
        code = EXIT_OK
    raise typer.Exit(code)


def _load_settings() -> None:
    """Read ``.env`` from the current folder (variables already set win)."""
    load_dotenv(find_dotenv(usecwd=True))


def _ended_line(event: Event) -> str:
    parts = [f"call ended by {event['ended_by']} after {event['duration']:.1f} s",
             f"{len(event['transcript'])} messages"]
    if event.get("transfer_to"):
        parts.append(f"transferred to {event['transfer_to']}")
    if event.get("answered_by"):
        parts.append(f"answered by {event['answered_by']}")
    if event.get("voicemail_left"):
        parts.append("voicemail left")
    return "; ".join(parts)


class _LiveLines(TypedDict):
    on_call_start: Callable[[Event], None]
    on_transcript: Callable[[Event], None]
    on_message: Callable[[Event], None]
    on_call_end: Callable[[Event], None]


def _live_callbacks() -> _LiveLines:
    """Callbacks that print a call's lines as they happen."""
    return {
        "on_call_start": lambda e: _line(
            "call", f"{e['direction']} call {e['call_sid'][:10]}… "
            f"{mask_number(e['caller'])} → {mask_number(e['callee'])}"
        ),
        "on_transcript": lambda e: _line("caller", e["text"]),
        "on_message": lambda e: _line("agent", e["text"]),
        "on_call_end": lambda e: _line("call", _ended_line(e)),
    }


@app.command()
def serve(
    target: TargetArg,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "0.0.0.0",
    record: Annotated[bool, typer.Option("--record", help="Record every call.")] = False,
    voicemail: Annotated[
        str, typer.Option(help="Voicemail for outbound calls a machine answers.")
    ] = "",
    drain_timeout: Annotated[
        float, typer.Option(help="On SIGTERM or Ctrl-C, seconds live calls may go on before "
                            "they are hung up.")
    ] = DEFAULT_DRAIN_TIMEOUT_S,
) -> None:
    """Answer calls to your number with the agent; prints each call's lines as they happen.

    Points the number's voice webhook at WEBHOOK_URL. SIGTERM or Ctrl-C drains: no new
    call is taken, live ones finish (up to --drain-timeout), then it exits 0; a second
    Ctrl-C hangs them up at once.
    """
    _load_settings()

    async def main() -> int:
        loaded = load_target(target)
        _line("call", f"serving {target} on {host}:{port}; calls to "
              f"{mask_number(loaded.phone.phone_number)} reach {loaded.phone.webhook_url}")
        await loaded.phone.serve(
            loaded.agent, port=port, host=host, recording=record,
            voicemail_message=voicemail, drain_timeout_s=drain_timeout, **_live_callbacks(),
        )
        return EXIT_OK

    _run(main)


@app.command()
def call(
    to: Annotated[str, typer.Argument(help="Number to call, E.164 (+15550009876).")],
    target: TargetArg,
    machine_detection: Annotated[
        bool, typer.Option("--machine-detection", help="Detect answering machines.")
    ] = False,
    voicemail: Annotated[
        str, typer.Option(help="Message left when a machine answers (with --machine-detection).")
    ] = "",
    record: Annotated[bool, typer.Option("--record", help="Record the call.")] = False,
    port: Annotated[int, typer.Option(help="Port the call's webhooks reach.")] = 8000,
) -> None:
    """Call a number with the agent and print the outcome (exit 1 if the call failed)."""
    _load_settings()

    async def main() -> int:
        _validate.e164(to, "call(to=...)")
        loaded = load_target(target)
        callbacks = _live_callbacks()
        try:
            handle = await loaded.phone.call(
                to, loaded.agent, machine_detection=machine_detection,
                voicemail_message=voicemail, recording=record, port=port,
                on_call_start=callbacks["on_call_start"],
                on_transcript=callbacks["on_transcript"],
                on_message=callbacks["on_message"],
            )
            end = await handle.wait()
        finally:
            await loaded.phone.close()
        # The end event's status, not handle.status: Twilio's "completed" callback can
        # arrive after the session has ended the call and delivered on_call_end.
        status = end.get("status", handle.status)
        _line("call", f"status {status}; " + _ended_line(end))
        return EXIT_OK if status == "completed" else EXIT_FAILED

    _run(main)


class _TurnOrderCommand(typer.core.TyperCommand):
    """Keeps the command line so ``simulate`` plays --say/--dtmf/--wav in the order given."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Remember the raw arguments, then parse as usual."""
        ctx.meta["raw_args"] = list(args)
        return super().parse_args(ctx, args)


def _turns(raw: list[str], values: dict[TurnKind, list[str]]) -> list[Turn]:
    """The caller's turns in command-line order."""
    kinds: list[TurnKind] = []
    skip = False
    for arg in raw:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in TURN_OPTIONS:
            kinds.append(TURN_OPTIONS[name])
            skip = "=" not in arg
    pending = {kind: list(items) for kind, items in values.items()}
    turns = [Turn(kind, pending[kind].pop(0)) for kind in kinds if pending[kind]]
    turns += [Turn(kind, item) for kind, items in pending.items() for item in items]
    return turns


@app.command(cls=_TurnOrderCommand)
def simulate(
    ctx: typer.Context,
    target: TargetArg,
    say: Annotated[
        list[str] | None,
        typer.Option(help="The caller says TEXT (spoken locally by espeak-ng). Repeatable."),
    ] = None,
    dtmf: Annotated[
        list[str] | None, typer.Option(help="The caller presses KEYS (0-9, *, #). Repeatable.")
    ] = None,
    wav: Annotated[
        list[Path] | None,
        typer.Option(help="The caller plays a 16-bit mono WAV recording. Repeatable."),
    ] = None,
    fakes: Annotated[
        bool,
        typer.Option("--fakes", help="Vendors are local fakes (default): the STT hears each "
                     "--say as its text, the LLM answers 'You said: …'. No key needed."),
    ] = False,
    real: Annotated[
        bool,
        typer.Option("--real", help="Your real STT, LLM and TTS with the keys in the "
                     "environment; the phone line and Twilio are still simulated."),
    ] = False,
    offline: Annotated[
        bool, typer.Option("--offline", help="Local speech engines (patter[offline]): "
                           "espeak-ng speaks each --say, Moonshine hears it, Piper speaks "
                           "the agent's replies. No key needed.")
    ] = False,
    save_wav: Annotated[
        Path | None, typer.Option(help="Write what the caller heard to this WAV file.")
    ] = None,
    outbound: Annotated[
        bool, typer.Option("--outbound", help="The agent calls the phone (as `patter call`).")
    ] = False,
    machine_detection: Annotated[
        bool, typer.Option("--machine-detection", help="With --outbound: detect machines.")
    ] = False,
    voicemail: Annotated[
        str, typer.Option(help="With --outbound: the voicemail a machine gets.")
    ] = "",
    answered_by: Annotated[
        str,
        typer.Option(help="With --outbound: who answers, as Twilio's AnsweredBy "
                     "(human, machine_end_beep, fax…)."),
    ] = "human",
) -> None:
    """Call your own agent through a simulated phone: no number, no Twilio account.

    Each turn waits until the agent has finished speaking. Lines print as
    'caller: …' (what the STT heard) and 'agent: …'.
    """
    if sum((fakes, real, offline)) > 1:
        raise _fail("choose one of --fakes, --real and --offline.", EXIT_USAGE)
    bad_keys = [keys for keys in dtmf or [] if not keys or set(keys) - set(DTMF_KEYS)]
    if bad_keys:
        raise _fail(f"--dtmf {bad_keys[0]!r}: keys are {DTMF_KEYS} only, e.g. --dtmf 1 or "
                    "--dtmf '12#'.", EXIT_USAGE)
    mode: Mode = "real" if real else "offline" if offline else "fakes"
    if mode == "real":
        _load_settings()
    turns = _turns(ctx.meta.get("raw_args", []), {
        "say": say or [], "dtmf": dtmf or [], "wav": [str(p) for p in wav or []],
    })
    direction = Outbound(machine_detection, voicemail, answered_by) if outbound else None

    async def main() -> int:
        async with LoopbackWorld() as world:
            loaded: Target = load_in_world(world, target, mode)
            if mode == "fakes":
                script_fake_stt(world, turns)
            outcome = await run_call(
                world, loaded, turns, show=_line, outbound=direction, save_wav=save_wav
            )
        for problem in outcome.problems:
            _line("call", problem)
        if outcome.end is not None:
            _line("call", _ended_line(outcome.end))
        if save_wav is not None and outcome.end is not None:
            _line("call", f"saved what the caller heard to {save_wav}")
        return EXIT_OK if outcome.ok else EXIT_FAILED

    _run(main)


@app.command()
def doctor() -> None:
    """Check the settings, reach Twilio and each vendor, and check that WEBHOOK_URL answers.

    Never prints a secret; exits 1 when something is wrong.
    """
    from patter._doctor import run_checks

    _load_settings()

    async def main() -> int:
        checks = await run_checks()
        console = _console()
        for check in checks:
            mark = {True: "[green]✓[/green]", False: "[red]✗[/red]", None: "[dim]·[/dim]"}
            console.print(f"{mark[check.ok]} {check.name}: {escape(check.detail)}")
        problems = sum(check.ok is False for check in checks)
        console.print("all good" if not problems else f"{problems} problem(s) found")
        return EXIT_FAILED if problems else EXIT_OK

    _run(main)


@app.command()
def demo(
    out: Annotated[
        Path, typer.Option(help="Folder for demo-call.wav and demo-call.png.")
    ] = Path("."),
) -> None:
    """A whole phone call offline, no account, no key: with patter[offline] Moonshine hears
    the caller, a rule agent answers and Piper speaks; writes demo-call.wav and .png."""
    from patter.testing.demo import run_demo

    _run(lambda: run_demo(out))


def main() -> None:
    """Entry point of the ``patter`` console script: logs go to stderr, warnings and up."""
    configure_logging(logging.WARNING)
    sys.exit(app())
