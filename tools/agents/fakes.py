"""Deterministic STT, LLM and TTS plugins for the test agent (tools/agents/agent.py).

They implement the framework's own plugin interfaces (livekit-agents 1.2: stt.STT with a
RecognizeStream, llm.LLM with an LLMStream, tts.TTS with a ChunkedStream), so everything
around them, AgentSession, RoomIO, turn handling, interruptions, the `lk.agent.state`
attribute and the `lk.transcription` text streams, is the real framework at work. Nothing
here touches the network.
"""

from __future__ import annotations

import asyncio
import math
import uuid

import numpy as np
from livekit import rtc
from livekit.agents import APIConnectOptions, llm, stt, tts
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, NotGivenOr
from livekit.agents.utils import AudioBuffer

# The STT works at 16 kHz (the framework resamples the room's audio for it).
STT_SAMPLE_RATE = 16000
# An audio frame is "voiced" at or above this RMS (PCM16). The simulated device's speech
# signal peaks near 9000 and its silence frames decode to near 0, so any value between works.
VOICE_RMS = 300.0
# After this much audio since the first voiced frame, the fixed transcript is final.
UTTERANCE_S = 1.0
# After a final transcript, this much continuous silence (or a gap in the audio, which is
# what a device that stops sending looks like) before a new utterance can start. Longer
# than the dips between syllables, shorter than the pause between words (0.4 s).
RESET_SILENCE_S = 0.3

TTS_SAMPLE_RATE = 24000
# The synthesized length grows with the text, so the reply can be made long enough to be
# interrupted part way through while the greeting stays short.
TTS_SECONDS_PER_CHAR = 0.045
TTS_MIN_S = 0.8
TTS_MAX_S = 4.0


def _rms(frame: rtc.AudioFrame) -> float:
    samples = np.frombuffer(frame.data, dtype=np.int16).astype(np.float64)
    if samples.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(samples * samples)))


class FakeSTT(stt.STT):
    """Streams only. One utterance: the first voiced frame starts speech, and UTTERANCE_S
    later the fixed transcript is final and speech ends (the events turn_detection="stt"
    acts on), whether or not the user is still talking."""

    def __init__(self, *, transcript: str) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=True, interim_results=False))
        self._transcript = transcript

    @property
    def model(self) -> str:
        return "fixed-transcript"

    @property
    def provider(self) -> str:
        return "voice-fleet-test"

    async def _recognize_impl(
        self,
        buffer: AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions,
    ) -> stt.SpeechEvent:
        # Only reached through the framework's non-streaming path, which AgentSession does
        # not take for a streaming STT; answer the same fixed text for completeness.
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[stt.SpeechData(language="en", text=self._transcript, confidence=1.0)],
        )

    def stream(
        self,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> FakeSTTStream:
        return FakeSTTStream(stt=self, transcript=self._transcript, conn_options=conn_options)


class FakeSTTStream(stt.RecognizeStream):
    def __init__(self, *, stt: FakeSTT, transcript: str, conn_options: APIConnectOptions) -> None:
        super().__init__(stt=stt, conn_options=conn_options, sample_rate=STT_SAMPLE_RATE)
        self._transcript = transcript

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        state = "idle"  # idle -> speaking -> done -> idle
        heard_s = 0.0  # audio since the utterance began
        silent_s = 0.0  # continuous silence while done
        last_frame_at = loop.time()
        utterance = 0
        async for item in self._input_ch:
            if not isinstance(item, rtc.AudioFrame):
                continue  # a flush marker: segmentation here is by audio alone
            now = loop.time()
            gap = now - last_frame_at
            last_frame_at = now
            frame_s = item.samples_per_channel / item.sample_rate
            voiced = _rms(item) >= VOICE_RMS
            if state == "done":
                silent_s = 0.0 if voiced else silent_s + frame_s
                if silent_s >= RESET_SILENCE_S or gap >= RESET_SILENCE_S:
                    state = "idle"
            if state == "idle" and voiced:
                state, heard_s, utterance = "speaking", 0.0, utterance + 1
                self._event_ch.send_nowait(
                    stt.SpeechEvent(type=stt.SpeechEventType.START_OF_SPEECH, request_id=f"u{utterance}")
                )
            if state == "speaking":
                heard_s += frame_s
                if heard_s >= UTTERANCE_S:
                    request_id = f"u{utterance}"
                    self._event_ch.send_nowait(
                        stt.SpeechEvent(
                            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
                            request_id=request_id,
                            alternatives=[
                                stt.SpeechData(language="en", text=self._transcript, confidence=1.0)
                            ],
                        )
                    )
                    self._event_ch.send_nowait(
                        stt.SpeechEvent(type=stt.SpeechEventType.END_OF_SPEECH, request_id=request_id)
                    )
                    state, silent_s = "done", 0.0


class FakeLLM(llm.LLM):
    """Answers every turn with the same fixed text, after a short think (so that the agent's
    `thinking` state is visible between the user's turn and the reply)."""

    def __init__(self, *, reply: str, think_s: float = 0.2) -> None:
        super().__init__()
        self._reply = reply
        self._think_s = think_s

    @property
    def model(self) -> str:
        return "fixed-reply"

    @property
    def provider(self) -> str:
        return "voice-fleet-test"

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.FunctionTool | llm.RawFunctionTool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, object]] = NOT_GIVEN,
    ) -> FakeLLMStream:
        return FakeLLMStream(
            self, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options, reply=self._reply
        )


class FakeLLMStream(llm.LLMStream):
    def __init__(
        self,
        fake: FakeLLM,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.FunctionTool | llm.RawFunctionTool],
        conn_options: APIConnectOptions,
        reply: str,
    ) -> None:
        super().__init__(fake, chat_ctx=chat_ctx, tools=tools, conn_options=conn_options)
        self._reply = reply

    async def _run(self) -> None:
        await asyncio.sleep(self._llm._think_s if isinstance(self._llm, FakeLLM) else 0)
        self._event_ch.send_nowait(
            llm.ChatChunk(
                id=f"fake-{uuid.uuid4().hex[:8]}",
                delta=llm.ChoiceDelta(role="assistant", content=self._reply),
            )
        )


def voiced_signal(seconds: float, sample_rate: int = TTS_SAMPLE_RATE) -> bytes:
    """A voice-like test signal as PCM16 LE: harmonics of a gliding ~150 Hz pitch under a
    syllable envelope (about 4 a second), loud throughout (no word pauses), so that a
    listener can tell "playing" from "stopped" by level alone."""
    n = int(seconds * sample_rate)
    t = np.arange(n, dtype=np.float64) / sample_rate
    pitch = 150.0 * (1.0 + 0.1 * np.sin(2 * math.pi * 0.7 * t))
    phase = 2 * math.pi * np.cumsum(pitch) / sample_rate
    wave = np.zeros(n)
    for h in range(1, 9):
        wave += np.sin(h * phase) / h
    envelope = 0.35 + 0.65 * np.sin(math.pi * ((t * 4.0) % 1.0)) ** 2
    pcm = np.clip(wave * envelope * 7000.0, -32768, 32767).astype("<i2")
    return pcm.tobytes()


def tts_seconds(text: str) -> float:
    return min(TTS_MAX_S, max(TTS_MIN_S, TTS_SECONDS_PER_CHAR * len(text)))


class FakeTTS(tts.TTS):
    """Non-streaming: each sentence becomes tts_seconds(sentence) of voiced_signal. The
    framework wraps it in its StreamAdapter (sentence tokenizer), as for any such TTS."""

    def __init__(self) -> None:
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False),
            sample_rate=TTS_SAMPLE_RATE,
            num_channels=1,
        )

    @property
    def model(self) -> str:
        return "voiced-test-signal"

    @property
    def provider(self) -> str:
        return "voice-fleet-test"

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> FakeChunkedStream:
        return FakeChunkedStream(tts=self, input_text=text, conn_options=conn_options)


class FakeChunkedStream(tts.ChunkedStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        output_emitter.initialize(
            request_id=f"fake-{uuid.uuid4().hex[:8]}",
            sample_rate=TTS_SAMPLE_RATE,
            num_channels=1,
            mime_type="audio/pcm",
        )
        pcm = voiced_signal(tts_seconds(self.input_text))
        chunk = TTS_SAMPLE_RATE // 10 * 2  # 100 ms of PCM16
        for i in range(0, len(pcm), chunk):
            output_emitter.push(pcm[i : i + chunk])
        output_emitter.flush()
