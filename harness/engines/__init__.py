"""Engine launch commands rendered from the Jinja templates in templates/."""
