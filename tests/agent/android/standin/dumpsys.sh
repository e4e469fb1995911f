#!/bin/sh
# Stand-in dumpsys: prints $FAKE_PHONE/dumpsys/SERVICE.txt (the stand-in adb
# rewrites battery and thermalservice before every command).
file="$FAKE_PHONE/dumpsys/$1.txt"
if [ -f "$file" ]; then
    cat "$file"
else
    echo "Can't find service: $1"
fi
