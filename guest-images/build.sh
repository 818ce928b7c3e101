#!/usr/bin/env bash
# Placeholder until the image builder lands (issue 2).
echo "guest-images: builder not written yet" >&2
