#!/bin/sh
# Stand-in uname: the phone's kernel release from $FAKE_PHONE/kernel.txt.
cat "$FAKE_PHONE/kernel.txt"
