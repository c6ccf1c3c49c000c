GREETING = "Hello from uWSGI. Edit demo/greeting.py, save, and reload this page."
