output "topic_name" {
  description = "Short topic name (what publishers pass with the project id)."
  value       = google_pubsub_topic.this.name
}

output "topic_id" {
  description = "projects/P/topics/NAME."
  value       = google_pubsub_topic.this.id
}

output "subscription_name" {
  description = "The main (push or pull) subscription."
  value       = google_pubsub_subscription.this.name
}

output "dead_letter_topic_name" {
  description = "Dead-letter topic."
  value       = google_pubsub_topic.dead_letter.name
}

output "dead_letter_subscription_name" {
  description = "Pull subscription on the dead-letter topic (inspect / replay poison messages)."
  value       = google_pubsub_subscription.dead_letter.name
}
