package identity

import "testing"

func TestIsUserID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"0193a5b2-7c1d-7e4f-8a9b-0c1d2e3f4a5b", true},
		{"0193A5B2-7C1D-7E4F-8A9B-0C1D2E3F4A5B", true},
		{"", false},
		{"not-a-uuid", false},
		// Forms uuid.Parse accepts that would name the same user another way.
		{"{0193a5b2-7c1d-7e4f-8a9b-0c1d2e3f4a5b}", false},
		{"urn:uuid:0193a5b2-7c1d-7e4f-8a9b-0c1d2e3f4a5b", false},
		{"0193a5b27c1d7e4f8a9b0c1d2e3f4a5b", false},
		{ServiceSubject, false},
		{"0193a5b2-7c1d-7e4f-8a9b-0c1d2e3f4a5g", false},
	}
	for _, tt := range tests {
		if got := IsUserID(tt.id); got != tt.want {
			t.Errorf("IsUserID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}
