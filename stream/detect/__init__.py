"""Face detection: MediaPipe BlazeFace, offline from the installed package."""
