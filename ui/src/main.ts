import { mount } from 'svelte';
import App from './App.svelte';
import { theme } from './lib/stores/theme.svelte';
import './app.css';

// Apply the saved theme to <html> before the first render (no flash of the wrong theme).
theme();

const target = document.getElementById('app');
if (!target) throw new Error('#app element missing from index.html');

export default mount(App, { target });
