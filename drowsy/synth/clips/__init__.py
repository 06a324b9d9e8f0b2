"""Synthetic driver video clips with a scripted ground truth, for the driver-state monitor.

A clip is one driver from `drowsy.synth`, animated (`animate`) by a script (`script`): the head drifts
while the script's actions play. Three scripts (`SCRIPTS`):
- "story": blinks, yawns, phone use, smoking and a drowsy phase (long blinks so frequent that PERCLOS
  over 60 s passes 0.2) ending in a microsleep (`script.plan_events`);
- "protocol": the driver-monitoring protocol's items one after another: glances away of every length
  towards the protocol's gaze locations, VATS sequences, closures from microsleep to unresponsive,
  yawns against talking and laughing, eye rubbing, phone, smoking, sunglasses, glare and the face
  out of frame (`protocol.protocol_script`);
- "alert": alert driving with nothing to alert on, for false alerts per hour (`protocol.alert_script`).

`write_clip` writes OUT/clip.mp4, OUT/frames.json (per-frame boxes, true state and head pose) and
OUT/events.json (the truth, with each event's alert time and the alert-free stretches). Times are
seconds from the clip start; frame i shows time i / fps.
"""
