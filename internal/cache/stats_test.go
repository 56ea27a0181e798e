package cache_test

import (
	"testing"

	"github.com/bounce-milter/bounce-milter/internal/cache"
	"github.com/bounce-milter/bounce-milter/internal/cache/storetest"
)

func TestMemoryStatsConformance(t *testing.T) {
	storetest.RunStats(t, func(t *testing.T) cache.StatsStore { return cache.NewMemoryStats() })
}

func TestMemoryAlertsConformance(t *testing.T) {
	storetest.RunAlerts(t, func(t *testing.T) cache.AlertStore { return cache.NewMemoryAlerts() })
}
