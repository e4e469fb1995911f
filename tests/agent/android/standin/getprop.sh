#!/bin/sh
# Stand-in getprop: the phone's properties live in $FAKE_PHONE/props.txt as
# "[key]: [value]" lines, the format `getprop` with no argument prints.
props="$FAKE_PHONE/props.txt"
if [ $# -eq 0 ]; then
    cat "$props"
    exit 0
fi
key=$(printf '%s' "$1" | sed 's/[.[\*^$]/\\&/g')
value=$(sed -n "s/^\[$key\]: \[\(.*\)\]\$/\1/p" "$props")
printf '%s\n' "$value"
