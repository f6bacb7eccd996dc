package room

import "testing"

func TestCompleteRunesKeepsAnIncompleteCharacterBack(t *testing.T) {
	cases := []struct {
		in   string
		want int
	}{
		{"abc", 3},
		{"h\xc3\xa9", 3},         // é complete
		{"h\xc3", 1},             // é cut after its first byte
		{"\xe2\x82", 0},          // € cut after two of three bytes
		{"a\xf0\x9f\x98\x80", 5}, // an emoji, complete
		{"a\xf0\x9f\x98", 1},     // the emoji cut
		{"", 0},
	}
	for _, c := range cases {
		if got := completeRunes([]byte(c.in)); got != c.want {
			t.Errorf("completeRunes(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}
