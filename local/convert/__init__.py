"""The built-in video converter: AWS Elemental MediaConvert's API subset, on one machine."""
