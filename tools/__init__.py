"""Tools the agents call: specs, the toolbox, page sources and the built-in tools."""

from tools.base import Tool, ToolContext, ToolSpec
from tools.calculator import Calculator
from tools.database import Database
from tools.docstore import Docstore
from tools.image2text import Image2Text, ocr_texts
from tools.knowledge_graph import KnowledgeGraph
from tools.langchain_tools import (
                                   as_langchain_tool,
                                   langchain_tools,
                                   register_function,
                                   register_langchain_tool,
)
from tools.lookup import Lookup, set_lookup_source
from tools.pages import Page, PageSource, Searcher, split_sentences
from tools.registry import (
                                   GRAPH_ACTIONS,
                                   ToolResources,
                                   build_toolbox,
                                   builtin_spec,
                                   register_tool,
                                   registered_names,
                                   unregister_tool,
)
from tools.retrieve import Retrieve
from tools.search import Search
from tools.spec import (
                                   FINISH_SPEC,
                                   REFLECT_SPEC,
                                   default_tool_specs,
                                   load_tool_specs,
                                   save_tool_specs,
)
from tools.table_verbalizer import TableVerbalizer
from tools.text2image import Text2Image
from tools.toolbox import Toolbox
from tools.wiki import WikipediaSource

__all__ = [
    "Calculator", "Database", "Docstore", "FINISH_SPEC", "GRAPH_ACTIONS", "Image2Text",
    "KnowledgeGraph", "Lookup", "Page", "PageSource", "REFLECT_SPEC", "Retrieve", "Search",
    "Searcher", "TableVerbalizer", "Text2Image", "Tool", "ToolContext", "ToolResources",
    "ToolSpec", "Toolbox", "WikipediaSource", "as_langchain_tool", "build_toolbox",
    "builtin_spec", "default_tool_specs", "langchain_tools", "load_tool_specs", "ocr_texts",
    "register_function", "register_langchain_tool", "register_tool", "registered_names",
    "save_tool_specs", "set_lookup_source", "split_sentences", "unregister_tool",
]
