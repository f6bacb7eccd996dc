"""A minimal LiveKit Agents 1.2 voice agent for the tests, shaped like the deployed one.

Like the deployed agent (docs/agents-worker.md): the worker registers without an
agent_name, so the server auto-dispatches it into every new room; it connects audio only
and lets AgentSession link the first participant that joins; it greets when the gateway
sends `start_greeting` (or the older `agent_ready`), once, and stops talking on
`abort_playback`. Everything else, turn taking, `lk.agent.state`, `lk.transcription`, is the
framework's own, driven by the fake STT, LLM and TTS of fakes.py.

Run: .cache/agents-venv/bin/python tools/agents/agent.py start
with LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET set; TEST_AGENT_GREETING,
TEST_AGENT_TRANSCRIPT and TEST_AGENT_REPLY override the fixed texts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import sys
from pathlib import Path

from livekit import rtc
from livekit.agents import (
    Agent,
    AgentSession,
    AutoSubscribe,
    JobContext,
    WorkerOptions,
    cli,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fakes import FakeLLM, FakeSTT, FakeTTS  # noqa: E402

logger = logging.getLogger("test-agent")

GREETING = os.environ.get("TEST_AGENT_GREETING", "Hello, I am the test agent.")
TRANSCRIPT = os.environ.get("TEST_AGENT_TRANSCRIPT", "what is the weather like today")
REPLY = os.environ.get(
    "TEST_AGENT_REPLY",
    "Here is the fixed reply of the test agent, long enough to be interrupted on the way.",
)

# The gateway's data messages this agent acts on (the deployed agent's names).
GREETING_TRIGGERS = ("start_greeting", "agent_ready")
ABORT = "abort_playback"


async def entrypoint(ctx: JobContext) -> None:
    session: AgentSession | None = None
    greet = asyncio.Event()

    def on_data(packet: rtc.DataPacket) -> None:
        try:
            message = json.loads(packet.data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            logger.warning("ignored a data packet that is not JSON (%d bytes)", len(packet.data))
            return
        kind = message.get("type") if isinstance(message, dict) else None
        if kind in GREETING_TRIGGERS:
            logger.info("greeting requested by %s", kind)
            greet.set()
        elif kind == ABORT:
            logger.info("abort_playback: interrupting")
            if session is not None:
                session.interrupt()
        else:
            logger.info("ignored data message type %r", kind)

    # Before connecting: a greeting request can arrive as soon as the agent is in the room.
    ctx.room.on("data_received", on_data)
    await ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY)
    logger.info("joined room %s", ctx.room.name)

    session = AgentSession(
        stt=FakeSTT(transcript=TRANSCRIPT),
        llm=FakeLLM(reply=REPLY),
        tts=FakeTTS(),
        # The fake STT marks the end of speech itself: no VAD, no turn-detector model.
        turn_detection="stt",
    )
    await session.start(agent=Agent(instructions="You are the voice-fleet test agent."), room=ctx.room)

    await greet.wait()
    session.say(GREETING)


def _no_load() -> float:
    return 0.0


def main() -> None:
    cli.run_app(
        WorkerOptions(
            entrypoint_fnc=entrypoint,
            # No agent_name: automatic dispatch into every new room, as the deployed agent.
            # Loopback only, and an ephemeral port for the worker's health server (the
            # production default, 8081, would clash between concurrent test runs).
            host="127.0.0.1",
            port=0,
            # The load the worker reports is this machine's CPU use by default, and the
            # server offers a job only to a worker under its target load (0.7, livekit-server
            # pkg/service/agentservice.go JobRequestAffinity): on a busy shared CI machine
            # no job would ever come. A test worker always has room for one more.
            load_fnc=_no_load,
            load_threshold=math.inf,
            # One process kept warm is enough for one room at a time, and cheap on 2 cores.
            num_idle_processes=1,
            # Importing the framework in a new job process takes seconds on a busy machine.
            initialize_process_timeout=30.0,
            # On SIGTERM, wait a little for running jobs to end (their rooms are gone by then,
            # which ends them), not the default 30 minutes; past it the worker exits with a
            # TimeoutError and its harness kills what is left.
            drain_timeout=5,
            shutdown_process_timeout=5.0,
        )
    )


if __name__ == "__main__":
    main()
