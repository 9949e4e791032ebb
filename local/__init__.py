"""The one-machine stack: the built-in face engine and its Rekognition-compatible
endpoint, the event bridge and the launcher. Never deployed to Lambda."""
