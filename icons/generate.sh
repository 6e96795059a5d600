#!/bin/sh
# Regenerates the app and tray icons (RGBA PNGs) with ImageMagick. Each tray state has its
# own badge shape and glyph, so it reads without colour too:
#   all-clear  green circle with a check     warnings     amber triangle with "!"
#   errors     red square with a cross       unreachable  grey circle with a slash
set -eu
cd "$(dirname "$0")"

BELL_BODY="path 'M128 30 C 86 30 66 64 66 104 L 66 150 L 40 186 L 216 186 L 190 150 L 190 104 C 190 64 170 30 128 30 Z'"
BELL_PARTS="circle 128,26 128,14 circle 128,200 128,222"

# A 256x256 transparent canvas with the bell; $1 = fill, $2 = outline.
bell() {
  convert -size 256x256 xc:none -fill "$1" -stroke "$2" -strokewidth 10 -draw "$BELL_BODY" \
    -fill "$2" -stroke none -draw "$BELL_PARTS" "$3"
}

tray() { # $1 = name, $2... = draw arguments for the badge
  name=$1; shift
  bell '#eceff1' '#263238' /tmp/kn-bell.png
  convert /tmp/kn-bell.png "$@" -resize 64x64 -depth 8 -define png:color-type=6 "tray-$name.png"
}

tray all-clear \
  -fill '#2e7d32' -stroke '#ffffff' -strokewidth 10 -draw 'circle 188,188 188,128' \
  -fill none -stroke '#ffffff' -strokewidth 20 -draw "polyline 160,190 182,212 218,166"

tray warnings \
  -fill '#f59e0b' -stroke '#ffffff' -strokewidth 10 -draw 'polygon 188,112 252,246 124,246' \
  -fill '#1f2937' -stroke none -draw 'roundrectangle 180,150 196,208 5,5' -draw 'circle 188,227 188,237'

tray errors \
  -fill '#d32f2f' -stroke '#ffffff' -strokewidth 10 -draw 'roundrectangle 128,128 250,250 18,18' \
  -fill none -stroke '#ffffff' -strokewidth 20 -draw 'line 162,162 216,216' -draw 'line 216,162 162,216'

tray unreachable \
  -channel A -evaluate multiply 0.55 +channel \
  -fill '#616161' -stroke '#ffffff' -strokewidth 10 -draw 'circle 188,188 188,128' \
  -fill none -stroke '#ffffff' -strokewidth 14 -draw 'circle 188,188 188,154' -draw 'line 164,164 212,212'

# App icon: white bell on a blue rounded square.
convert -size 256x256 xc:none -fill '#2f6fde' -draw 'roundrectangle 8,8 248,248 48,48' /tmp/kn-bg.png
bell '#ffffff' '#ffffff' /tmp/kn-white-bell.png
convert /tmp/kn-white-bell.png -resize 168x168 /tmp/kn-white-bell-small.png
convert /tmp/kn-bg.png /tmp/kn-white-bell-small.png -gravity center -geometry +0+4 -composite \
  -depth 8 -define png:color-type=6 icon.png
convert icon.png -resize 128x128 -depth 8 -define png:color-type=6 128x128.png
convert icon.png -resize 32x32 -depth 8 -define png:color-type=6 32x32.png
rm -f /tmp/kn-bell.png /tmp/kn-bg.png /tmp/kn-white-bell.png /tmp/kn-white-bell-small.png
