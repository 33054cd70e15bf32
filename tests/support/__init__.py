"""What the tests stand on: real local servers (PostgreSQL, SMTP, Twilio-compatible, the web app in a
thread) and builders of project folders and campaigns. Test modules import from here, never from
each other; fixtures built on these live in the conftest files."""
