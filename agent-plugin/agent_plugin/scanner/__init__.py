"""Model scanning: GGUF files and HuggingFace folders under the configured roots,
incremental through an index of file sizes and mtimes.

``scanner.ModelScanner`` walks; ``formats.FORMATS`` holds one reader per format. This
package module imports nothing, so ``agent_plugin.vram`` can use the format readers while
the scanner uses the estimate.
"""
