"""The forms the fake Twilio posts to an application's callbacks: call progress (status),
asynchronous AMD and recording status, each as Twilio sends it."""

from __future__ import annotations

from patter.testing._twilio_state import API_VERSION, FakeCall, FakeRecording, rfc2822, utcnow


def progress_form(call: FakeCall, event: str) -> dict[str, str]:
    """The status callback of ``call`` for its progress ``event`` (``initiated``…)."""
    params = call.call_params()
    params.update(
        CallbackSource="call-progress-events",
        SequenceNumber=str(len(call.status_callbacks)),
        Timestamp=rfc2822(utcnow()) or "",
    )
    if event == "initiated":
        params["CallStatus"] = "initiated"
    if event == "completed" and call.start_time and call.end_time:
        params["CallDuration"] = str(int((call.end_time - call.start_time).total_seconds()))
    return params


def amd_form(call: FakeCall, answered_by: str, detection_s: float) -> dict[str, str]:
    """The asynchronous AMD callback: who answered ``call``, found in ``detection_s``."""
    return {
        "AccountSid": call.account_sid,
        "AnsweredBy": answered_by,
        "CallSid": call.sid,
        "MachineDetectionDuration": str(int(detection_s * 1000)),
    }


def recording_form(call: FakeCall, recording: FakeRecording) -> dict[str, str]:
    """The recording status callback of ``recording`` in its present state."""
    params = {
        "AccountSid": call.account_sid,
        "CallSid": call.sid,
        "ErrorCode": "0",
        "RecordingChannels": str(recording.channels),
        "RecordingSid": recording.sid,
        "RecordingSource": "StartCallRecordingAPI",
        "RecordingStartTime": rfc2822(recording.started) or "",
        "RecordingStatus": recording.status,
        "RecordingTrack": "both",
        "RecordingUrl": f"https://api.twilio.com/{API_VERSION}/Accounts/"
        f"{call.account_sid}/Recordings/{recording.sid}",
    }
    if recording.duration_s is not None:
        params["RecordingDuration"] = str(recording.duration_s)
    return params
