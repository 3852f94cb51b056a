//! ESP32-family application image parser (placeholder, filled in by the image work).
