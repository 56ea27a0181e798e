package events_test

import (
	"testing"
	"time"

	"github.com/bounce-milter/bounce-milter/internal/events"
	"github.com/bounce-milter/bounce-milter/internal/events/eventstest"
)

func TestMemoryStore(t *testing.T) {
	eventstest.Run(t, &events.MemoryStore{}, time.Now())
}
