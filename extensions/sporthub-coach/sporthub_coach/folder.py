"""Where the athlete's data lives: ``~/activities`` (recordings and the daily log.csv)."""

ACTIVITIES = "activities"
